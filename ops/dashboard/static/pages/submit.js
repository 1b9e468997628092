/* Submit page: a command (command + one argument per line) or a VPS (an SSH
 * public key pasted or generated in the browser), the environment, the
 * resources and targets picked from the live nodes, array, dependencies,
 * priority and time limit; POST /api/submit. */
(function () {
  'use strict';

  /** parseBytes reads "512M", "4G", "1.5GiB", "1024" (bytes) as bytes; NaN when invalid. */
  function parseBytes(s) {
    s = String(s || '').trim();
    if (!s) return 0;
    var m = /^(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b)?$/i.exec(s);
    if (!m) return NaN;
    var exp = ' kmgtp'.indexOf((m[2] || ' ').toLowerCase());
    return Math.round(parseFloat(m[1]) * Math.pow(1024, exp));
  }

  /** parseDuration reads "90", "90s", "1h30m", "2d" as seconds; NaN when invalid. */
  function parseDuration(s) {
    s = String(s || '').trim();
    if (!s) return 0;
    if (/^\d+$/.test(s)) return parseInt(s, 10);
    var re = /(\d+)\s*([dhms])/gi, total = 0, m, used = 0;
    var unit = { d: 86400, h: 3600, m: 60, s: 1 };
    while ((m = re.exec(s))) { total += parseInt(m[1], 10) * unit[m[2].toLowerCase()]; used += m[0].length; }
    return used === s.replace(/\s+/g, '').length || used === s.length ? total : NaN;
  }

  /* ---------------------------------------------- ed25519 keys in the browser */
  function u32(n) { return [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]; }
  function sshString(bytes) { return u32(bytes.length).concat(Array.prototype.slice.call(bytes)); }
  function ascii(s) { var a = []; for (var i = 0; i < s.length; i++) a.push(s.charCodeAt(i)); return a; }
  function b64(bytes) { var s = ''; for (var i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]); return btoa(s); }

  /**
   * generateKey makes an ed25519 key pair with WebCrypto and resolves to
   * {pub: "ssh-ed25519 AAAA... comment", priv: OpenSSH private key text};
   * it rejects where the browser has no Ed25519.
   */
  function generateKey(comment) {
    if (!window.crypto || !crypto.subtle) return Promise.reject(new Error('WebCrypto is not available on this page (it needs HTTPS or localhost).'));
    return crypto.subtle.generateKey({ name: 'Ed25519' }, true, ['sign', 'verify']).then(function (kp) {
      return Promise.all([crypto.subtle.exportKey('raw', kp.publicKey), crypto.subtle.exportKey('pkcs8', kp.privateKey)]);
    }).then(function (keys) {
      var pub = new Uint8Array(keys[0]);
      var pkcs8 = new Uint8Array(keys[1]);
      var seed = pkcs8.slice(pkcs8.length - 32); // PKCS#8 of Ed25519 ends with the 32-byte seed
      var type = ascii('ssh-ed25519');
      var pubBlob = sshString(type).concat(sshString(pub));
      var check = u32((Math.random() * 0xffffffff) >>> 0);
      var priv = check.concat(check, sshString(type), sshString(pub),
        sshString(Array.prototype.slice.call(seed).concat(Array.prototype.slice.call(pub))), sshString(ascii(comment)));
      for (var pad = 1; priv.length % 8 !== 0; pad++) priv.push(pad);
      var body = ascii('openssh-key-v1').concat([0], sshString(ascii('none')), sshString(ascii('none')), sshString([]),
        u32(1), sshString(pubBlob), sshString(priv));
      var text = b64(body).replace(/(.{70})/g, '$1\n').replace(/\n$/, '');
      return {
        pub: 'ssh-ed25519 ' + b64(pubBlob) + ' ' + comment,
        priv: '-----BEGIN OPENSSH PRIVATE KEY-----\n' + text + '\n-----END OPENSSH PRIVATE KEY-----\n'
      };
    });
  }

  HR.page('submit', {
    path: '/submit',
    title: 'Submit',
    nav: true,
    order: 35,
    component: {
      props: ['params'],
      data: function () {
        var q = new URLSearchParams(location.search);
        return {
          mode: q.get('mode') === 'vps' ? 'vps' : 'command',
          command: '', args: '', envText: '', workdir: '',
          sshKey: '', privKey: null, privName: '', keyErr: null, canGenerate: !!(window.crypto && crypto.subtle),
          container: '', envs: [], nodes: [],
          cores: 1, memory: '', gpuCount: 0,
          targets: {}, numa: {}, gpus: {},
          array: '', after: '', priority: 0, timeLimit: '',
          err: null, busy: false, result: null
        };
      },
      template: `
<div>
  <h1 class="h4">Submit</h1>
  <div v-if="!mayRun" class="alert alert-warning py-2" id="submit-viewer">Your account may look but not submit (a viewer); an admin can make it a user.</div>
  <form id="submit-form" @submit.prevent="submit" novalidate>
    <div class="btn-group mb-3" role="group" aria-label="What to run">
      <input type="radio" class="btn-check" id="mode-command" value="command" v-model="mode"><label class="btn btn-outline-primary btn-sm" for="mode-command">Command</label>
      <input type="radio" class="btn-check" id="mode-vps" value="vps" v-model="mode"><label class="btn btn-outline-primary btn-sm" for="mode-vps">VPS</label>
    </div>
    <div class="row g-3">
      <div class="col-12 col-lg-7">
        <div class="card"><div class="card-body">
          <template v-if="mode === 'command'">
            <label class="form-label" for="s-command">Command</label>
            <input id="s-command" class="form-control font-monospace mb-2" v-model="command" placeholder="python" autocomplete="off" required>
            <label class="form-label" for="s-args">Arguments <span class="hr-muted">(one per line, passed as is: no quoting needed)</span></label>
            <textarea id="s-args" class="form-control font-monospace mb-2" rows="4" v-model="args" placeholder="train.py&#10;--epochs&#10;10"></textarea>
            <div class="hr-muted mb-2" v-if="command">Runs: <span class="hr-cmd" id="s-preview">{{ preview }}</span></div>
            <label class="form-label" for="s-env">Environment variables <span class="hr-muted">(KEY=value per line)</span></label>
            <textarea id="s-env" class="form-control font-monospace mb-2" rows="2" v-model="envText"></textarea>
            <label class="form-label" for="s-workdir">Working directory</label>
            <input id="s-workdir" class="form-control font-monospace" v-model="workdir" placeholder="(the container's default)">
          </template>
          <template v-else>
            <label class="form-label" for="s-sshkey">SSH public key</label>
            <textarea id="s-sshkey" class="form-control font-monospace mb-2" rows="3" v-model="sshKey" placeholder="ssh-ed25519 AAAA... you@laptop"></textarea>
            <div class="d-flex flex-wrap gap-2 align-items-center">
              <label class="btn btn-sm btn-outline-secondary mb-0">Load a .pub file <input type="file" accept=".pub,text/plain" class="d-none" @change="loadKey"></label>
              <button v-if="canGenerate" type="button" class="btn btn-sm btn-outline-secondary" id="s-genkey" @click="gen">Generate a key pair here</button>
            </div>
            <div v-if="privKey" class="alert alert-warning mt-2" id="s-privkey">
              A private key was generated in this browser and is not stored anywhere: download it now, it is offered once.
              <a class="btn btn-sm btn-warning ms-2" :href="privKey" :download="privName" @click="dropKey">Download {{ privName }}</a>
            </div>
            <hr-error :err="keyErr"></hr-error>
          </template>
        </div></div>
      </div>
      <div class="col-12 col-lg-5">
        <div class="card"><div class="card-body">
          <label class="form-label" for="s-container">Environment</label>
          <select id="s-container" class="form-select mb-2" v-model="container">
            <option value="">cluster default</option>
            <option v-for="e in envs" :value="e">{{ e }}</option>
            <option v-if="mode === 'command'" value="NULL">NULL (native, no container)</option>
          </select>
          <div class="row g-2">
            <div class="col-4"><label class="form-label" for="s-cores">Cores</label><input id="s-cores" type="number" min="0" :max="maxCores || null" class="form-control" v-model.number="cores"></div>
            <div class="col-4"><label class="form-label" for="s-memory">Memory</label><input id="s-memory" class="form-control" v-model="memory" placeholder="e.g. 4G"></div>
            <div class="col-4"><label class="form-label" for="s-gpucount">GPUs (any)</label><input id="s-gpucount" type="number" min="0" class="form-control" v-model.number="gpuCount" :disabled="pickedGPUs"></div>
          </div>
          <div class="hr-muted mb-2" v-if="memory">= {{ memBytes >= 0 ? bytes(memBytes) : 'not a size' }}</div>
          <fieldset class="mt-2"><legend class="form-label fs-6 mb-1">Targets <span class="hr-muted">(none: the scheduler picks)</span></legend>
            <div v-for="n in nodes" :key="n.hostname" class="border rounded p-1 mb-1">
              <div class="form-check">
                <input class="form-check-input" type="checkbox" :id="'s-target-' + n.hostname" v-model="targets[n.hostname]" :disabled="n.status !== 'online'">
                <label class="form-check-label" :for="'s-target-' + n.hostname">{{ n.hostname }} <span class="hr-muted">{{ n.available_cores }}/{{ n.total_cores }} cores free · {{ bytes(n.memory_total_bytes - (n.memory_in_use_bytes || 0)) }} free<span v-if="n.drained"> · drained</span><span v-if="n.status !== 'online'"> · {{ n.status }}</span></span></label>
              </div>
              <div v-if="targets[n.hostname]" class="ms-4 d-flex flex-wrap gap-2 align-items-center">
                <select v-if="numaIDs(n).length" class="form-select form-select-sm w-auto" v-model="numa[n.hostname]" :aria-label="'NUMA node on ' + n.hostname"><option value="">any NUMA node</option><option v-for="id in numaIDs(n)" :value="id">NUMA {{ id }}</option></select>
                <span v-for="g in (n.gpu_info || [])" class="form-check form-check-inline"><input class="form-check-input" type="checkbox" :id="'s-gpu-' + n.hostname + '-' + g.gpu_id" :value="g.gpu_id" v-model="gpus[n.hostname]"><label class="form-check-label small" :for="'s-gpu-' + n.hostname + '-' + g.gpu_id">GPU {{ g.gpu_id }} <span class="hr-muted">{{ g.name }}</span></label></span>
              </div>
            </div>
            <div v-if="!nodes.length" class="hr-muted">no runner registered</div>
          </fieldset>
          <div class="row g-2 mt-1">
            <div class="col-6" v-if="mode === 'command'"><label class="form-label" for="s-array">Array</label><input id="s-array" class="form-control" v-model="array" placeholder="0-9%2"></div>
            <div class="col-6"><label class="form-label" for="s-after">After tasks</label><input id="s-after" class="form-control" v-model="after" placeholder="IDs, comma separated"></div>
            <div class="col-6"><label class="form-label" for="s-priority">Priority</label><input id="s-priority" type="number" class="form-control" v-model.number="priority"></div>
            <div class="col-6"><label class="form-label" for="s-timelimit">Time limit</label><input id="s-timelimit" class="form-control" v-model="timeLimit" placeholder="e.g. 1h30m"></div>
          </div>
        </div></div>
      </div>
    </div>
    <hr-error :err="err"></hr-error>
    <button id="s-submit" class="btn btn-primary mt-3" type="submit" :disabled="busy || !mayRun">{{ mode === 'vps' ? 'Create VPS' : 'Submit' }}</button>
  </form>
  <div v-if="result" class="alert alert-success mt-3" id="submit-result">
    {{ result.message }}
    <div>Task(s): <span v-for="(id, i) in result.task_ids"><span v-if="i">, </span><hr-link :to="'/task/' + id" :id="'submitted-' + i">{{ id }}</hr-link></span></div>
    <div v-for="ft in (result.failed_targets || [])" class="text-danger hr-wrap">{{ ft.target }}: {{ ft.reason }}</div>
  </div>
</div>`,
      computed: {
        mayRun: function () { return HR.can('user'); },
        preview: function () { return HR.fmt.cmd(this.command, this.argList); },
        argList: function () { return this.args === '' ? [] : this.args.replace(/\r/g, '').replace(/\n$/, '').split('\n'); },
        memBytes: function () { var b = parseBytes(this.memory); return isNaN(b) ? -1 : b; },
        maxCores: function () { return Math.max.apply(null, [0].concat(this.nodes.map(function (n) { return n.total_cores; }))); },
        pickedGPUs: function () {
          var g = this.gpus, t = this.targets;
          return Object.keys(g).some(function (h) { return t[h] && g[h] && g[h].length; });
        }
      },
      created: function () {
        var self = this;
        HR.follow(self, 'applied', function () {
          HR.api('/api/nodes').then(function (ns) {
            ns = ns || [];
            ns.forEach(function (n) {
              if (!(n.hostname in self.targets)) self.$set(self.targets, n.hostname, false);
              if (!(n.hostname in self.numa)) self.$set(self.numa, n.hostname, '');
              if (!(n.hostname in self.gpus)) self.$set(self.gpus, n.hostname, []);
            });
            self.nodes = ns;
          }).catch(function (e) { self.err = e; });
        }, 1000);
        var names = {};
        Promise.all([
          HR.api('/api/docker/list').then(function (l) { Object.keys(l || {}).forEach(function (k) { names[k] = 1; }); }).catch(function () {}),
          HR.api('/api/docker/host/containers').then(function (l) { (l || []).forEach(function (c) { names[c.name] = 1; }); }).catch(function () {})
        ]).then(function () { self.envs = Object.keys(names).sort(); });
      },
      beforeDestroy: function () { this.dropKey(); },
      methods: {
        bytes: HR.fmt.bytes,
        numaIDs: function (n) { return Object.keys(n.numa_topology || {}).sort(function (a, b) { return a - b; }); },
        loadKey: function (ev) {
          var self = this, f = ev.target.files && ev.target.files[0];
          if (!f) return;
          f.text().then(function (t) { self.sshKey = t.trim(); });
        },
        gen: function () {
          var self = this;
          self.keyErr = null;
          var who = (HR.me && HR.me.user) || 'hakuriver';
          generateKey(who + '@hakuriver-dashboard').then(function (k) {
            self.sshKey = k.pub;
            self.dropKey();
            self.privKey = URL.createObjectURL(new Blob([k.priv], { type: 'application/octet-stream' }));
            self.privName = 'hakuriver_vps_ed25519';
          }).catch(function (e) {
            self.canGenerate = false;
            self.keyErr = new Error('This browser cannot generate an ed25519 key (' + (e.message || e.name) + '): paste a public key instead.');
          });
        },
        /** dropKey forgets the private key (after its one download). */
        dropKey: function () {
          var url = this.privKey;
          if (!url) return;
          var self = this;
          setTimeout(function () { URL.revokeObjectURL(url); if (self.privKey === url) self.privKey = null; }, 0);
        },
        build: function () {
          var req = { task_type: this.mode, request_id: 'ui-' + Date.now().toString(36) + '-' + Math.random().toString(36).slice(2, 10) };
          if (this.mode === 'vps') {
            var key = this.sshKey.trim();
            if (!key) throw new Error('SSH public key: paste one, load a .pub file or generate one');
            req.command = key;
          } else {
            if (!this.command.trim()) throw new Error('Command: required');
            req.command = this.command;
            if (this.argList.length) req.arguments = this.argList;
            var env = {};
            var lines = this.envText.replace(/\r/g, '').split('\n').filter(function (l) { return l.trim() !== ''; });
            lines.forEach(function (l, i) {
              var eq = l.indexOf('=');
              if (eq <= 0) throw new Error('Environment variables: line ' + (i + 1) + ' is not KEY=value');
              env[l.slice(0, eq).trim()] = l.slice(eq + 1);
            });
            if (lines.length) req.env_vars = env;
            if (this.workdir.trim()) req.working_dir = this.workdir.trim();
            if (this.array.trim()) req.array = this.array.trim();
          }
          if (this.container) req.container_name = this.container;
          if (this.cores !== '' && this.cores != null) {
            if (!(this.cores >= 0) || Math.floor(this.cores) !== this.cores) throw new Error('Cores: a whole number');
            req.required_cores = this.cores;
          }
          if (this.memory.trim()) {
            if (this.memBytes < 0) throw new Error('Memory: a size like 512M or 4G');
            req.required_memory_bytes = this.memBytes;
          }
          var self = this, targets = [], gpus = [];
          this.nodes.forEach(function (n) {
            if (!self.targets[n.hostname]) return;
            targets.push(n.hostname + (self.numa[n.hostname] !== '' ? ':' + self.numa[n.hostname] : ''));
            gpus.push((self.gpus[n.hostname] || []).map(Number));
          });
          if (targets.length) req.targets = targets;
          if (gpus.some(function (g) { return g.length; })) req.required_gpus = gpus;
          else if (this.gpuCount > 0) req.gpu_count = this.gpuCount;
          if (this.after.trim()) req.after = this.after.split(/[\s,]+/).filter(Boolean);
          if (this.priority) req.priority = this.priority;
          if (this.timeLimit.trim()) {
            var s = parseDuration(this.timeLimit);
            if (isNaN(s)) throw new Error('Time limit: seconds or a duration like 1h30m');
            req.time_limit_seconds = s;
          }
          return req;
        },
        submit: function () {
          var self = this, req;
          self.err = null;
          try { req = self.build(); } catch (e) { self.err = e; return; }
          self.busy = true;
          self.result = null;
          HR.api('/api/submit', { method: 'POST', body: req }).then(function (r) { self.result = r; })
            .catch(function (e) { self.err = e; }).then(function () { self.busy = false; });
        }
      }
    }
  });

  HR.submitUtil = { parseBytes: parseBytes, parseDuration: parseDuration, generateKey: generateKey };
})();
