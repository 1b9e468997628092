/* Environments page: the environment containers (GET /api/docker/host/containers)
 * and their tarball versions (GET /api/docker/list); create from an image,
 * start/stop, create a tarball with its progress (NDJSON stream), delete,
 * and a web terminal into a container (xterm.js over the WebSocket of
 * GET /api/docker/host/containers/{name}/terminal). */
(function () {
  'use strict';

  /** <hr-terminal :name> is a shell in environment container name. */
  Vue.component('hr-terminal', {
    props: ['name'],
    mixins: [HR.terminalMixin],
    template: `
<div class="card mt-3" id="env-terminal">
  <div class="card-header d-flex align-items-center gap-2 py-1">
    <strong>Terminal: {{ name }}</strong> <span class="hr-muted" id="env-terminal-state">{{ state }}</span>
    <button class="btn btn-sm btn-outline-secondary ms-auto" type="button" @click="$emit('close')" id="env-terminal-close">Close</button>
  </div>
  <div class="hr-term" ref="term" role="application" aria-label="terminal"></div>
  <div v-if="err" class="card-footer small text-danger hr-wrap">{{ err }}</div>
</div>`,
    mounted: function () {
      var self = this;
      var term = self.openTerm();
      var ws = new WebSocket(self.wsURL('/api/docker/host/containers/' + encodeURIComponent(self.name) + '/terminal?rows=' + term.rows + '&cols=' + term.cols));
      self.ws = ws;
      ws.onopen = function () { self.state = 'connected'; term.focus(); };
      ws.onmessage = function (ev) {
        var m;
        try { m = JSON.parse(ev.data); } catch (e) { return; }
        if (m.type === 'output') { term.write(m.data); self.record(m.data); }
        else if (m.type === 'error') { self.err = m.data; term.write('\r\n\x1b[31m' + m.data + '\x1b[0m\r\n'); }
        else if (m.type === 'exit') { self.state = 'shell exited (' + m.code + ')'; }
      };
      ws.onclose = function (ev) { self.closed(ev); };
      ws.onerror = function () { self.state = 'connection error'; };
      term.on('data', function (d) { if (ws.readyState === 1) ws.send(JSON.stringify({ type: 'input', data: d })); });
      term.on('resize', function (s) { if (ws.readyState === 1) ws.send(JSON.stringify({ type: 'resize', rows: s.rows, cols: s.cols })); });
    }
  });

  HR.page('environments', {
    path: '/environments',
    title: 'Environments',
    nav: true,
    order: 45,
    component: {
      props: ['params'],
      data: function () {
        return { containers: [], tarballs: {}, err: null, msg: '', busy: {}, image: '', cname: '', creating: false, progress: {}, term: '' };
      },
      template: `
<div>
  <h1 class="h4">Environments</h1>
  <hr-error :err="err"></hr-error>
  <div v-if="msg" class="alert alert-info py-2 hr-wrap" id="env-msg">{{ msg }}</div>
  <p v-if="!operator" class="hr-muted">Creating, changing and opening a terminal into environments is for operators.</p>
  <form v-if="operator" class="row g-2 align-items-end mb-3" id="env-create" @submit.prevent="create">
    <div class="col-12 col-md-4"><label class="form-label small mb-0" for="env-image">Image</label><input id="env-image" class="form-control form-control-sm" v-model.trim="image" placeholder="ubuntu:24.04" required></div>
    <div class="col-12 col-md-3"><label class="form-label small mb-0" for="env-name">Environment name</label><input id="env-name" class="form-control form-control-sm" v-model.trim="cname" placeholder="my-env" required></div>
    <div class="col-12 col-md-3"><button class="btn btn-sm btn-primary" type="submit" :disabled="creating || !image || !cname" id="env-create-btn">{{ creating ? 'Creating…' : 'Create from image' }}</button></div>
  </form>
  <h2 class="h5">Containers</h2>
  <div class="table-responsive">
  <table class="table table-sm bg-white" id="env-containers">
    <thead><tr><th>Name</th><th>Image</th><th>Status</th><th class="d-none d-md-table-cell">Replica</th><th>Actions</th></tr></thead>
    <tbody>
      <tr v-for="c in containers" :key="c.name" :id="'env-row-' + c.name">
        <td class="hr-wrap">{{ c.name }}</td><td class="hr-wrap">{{ c.image }}</td>
        <td><hr-status :s="c.state || c.status"></hr-status> <span class="hr-muted">{{ c.status }}</span></td>
        <td class="d-none d-md-table-cell">{{ c.replica || '-' }}</td>
        <td><div class="d-flex flex-wrap gap-1" v-if="operator">
          <button v-if="c.state !== 'running'" class="btn btn-sm btn-outline-success" type="button" :disabled="busy[c.name]" @click="op('start', c.name)">Start</button>
          <button v-if="c.state === 'running'" class="btn btn-sm btn-outline-dark" type="button" @click="term = c.name" :id="'env-term-' + c.name">Terminal</button>
          <button v-if="c.state === 'running'" class="btn btn-sm btn-outline-warning" type="button" :disabled="busy[c.name]" @click="op('stop', c.name)">Stop</button>
          <button class="btn btn-sm btn-outline-primary" type="button" :disabled="busy[c.name]" @click="tar(c.name)" :id="'env-tar-' + c.name">Create tarball</button>
          <button class="btn btn-sm btn-outline-danger" type="button" :disabled="busy[c.name]" @click="del(c.name)" :id="'env-del-' + c.name">Delete</button>
        </div>
        <div v-if="progress[c.name]" class="mt-1" :id="'env-progress-' + c.name">
          <div class="progress" role="progressbar" :aria-valuenow="progress[c.name].pct" aria-valuemin="0" aria-valuemax="100" style="height: .8rem"><div class="progress-bar" :style="{width: progress[c.name].pct + '%'}"></div></div>
          <span class="hr-muted">{{ progress[c.name].text }}</span>
        </div></td>
      </tr>
      <tr v-if="!containers.length"><td colspan="5" class="hr-muted">No environment container (create one from an image above).</td></tr>
    </tbody>
  </table>
  </div>
  <hr-terminal v-if="term" :name="term" :key="term" @close="term = ''"></hr-terminal>
  <h2 class="h5 mt-3">Tarballs</h2>
  <div class="table-responsive">
  <table class="table table-sm bg-white" id="env-tarballs">
    <thead><tr><th>Environment</th><th>Version</th><th>Size</th><th class="d-none d-md-table-cell">SHA-256</th></tr></thead>
    <tbody>
      <template v-for="name in tarNames">
        <tr v-for="(v, i) in tarballs[name].all_versions" :key="name + v.timestamp">
          <td>{{ i === 0 ? name : '' }}</td>
          <td><span :title="abs(v.timestamp)">{{ ago(v.timestamp) }}</span> <span v-if="i === 0" class="badge bg-success">latest</span></td>
          <td>{{ bytes(v.size) }}</td>
          <td class="d-none d-md-table-cell hr-cmd">{{ v.sha256 ? v.sha256.slice(0, 16) + '…' : '' }}</td>
        </tr>
      </template>
      <tr v-if="!tarNames.length"><td colspan="4" class="hr-muted">No tarball: runners use an environment once its tarball exists.</td></tr>
    </tbody>
  </table>
  </div>
</div>`,
      computed: {
        tarNames: function () { return Object.keys(this.tarballs || {}).sort(); },
        operator: function () { return HR.can('operator'); }
      },
      created: function () {
        var self = this;
        HR.follow(self, 'applied', function () { self.load(); }, 1000);
      },
      methods: {
        bytes: HR.fmt.bytes,
        abs: function (ts) { return HR.fmt.abs(ts * 1000); },
        ago: function (ts) { return HR.fmt.ago(ts * 1000); },
        load: function () {
          var self = this;
          return Promise.all([
            HR.api('/api/docker/host/containers').then(function (l) { self.containers = l || []; }),
            HR.api('/api/docker/list').then(function (l) { self.tarballs = l || {}; })
          ]).then(function () { self.err = null; }).catch(function (e) { self.err = e; });
        },
        create: function () {
          var self = this;
          self.creating = true;
          HR.api('/api/docker/host/create', { method: 'POST', body: { image_name: self.image, container_name: self.cname } })
            .then(function (r) { self.msg = r && r.message; self.err = null; self.cname = ''; return self.load(); })
            .catch(function (e) { self.err = e; }).then(function () { self.creating = false; });
        },
        op: function (what, name) {
          var self = this;
          self.$set(self.busy, name, true);
          return HR.api('/api/docker/host/' + what + '/' + encodeURIComponent(name), { method: 'POST' })
            .then(function (r) { self.msg = r && r.message; self.err = null; if (self.term === name && what !== 'start') self.term = ''; return self.load(); })
            .catch(function (e) { self.err = e; }).then(function () { self.$set(self.busy, name, false); });
        },
        del: function (name) {
          if (!confirm('Delete the environment container ' + name + '? Its tarballs stay.')) return;
          this.op('delete', name);
        },
        /** tar creates a tarball of name, showing the NDJSON progress lines. */
        tar: function (name) {
          var self = this;
          self.$set(self.busy, name, true);
          var set = function (pct, text) { self.$set(self.progress, name, { pct: pct, text: text }); };
          set(2, 'committing the container…');
          fetch('/api/docker/create_tar/' + encodeURIComponent(name), {
            method: 'POST', credentials: 'same-origin',
            headers: { Accept: 'application/x-ndjson, application/json', 'X-Hakuriver-CSRF': HR.cookie('hakuriver_csrf') }
          }).then(function (resp) {
            if (resp.status === 401) { HR.events.emit('unauthorized', new HR.AuthError()); throw new HR.AuthError(); }
            if (!resp.ok || (resp.headers.get('Content-Type') || '').indexOf('application/x-ndjson') !== 0 || !resp.body) {
              return resp.text().then(function (t) {
                var d = {};
                try { d = JSON.parse(t); } catch (e) { d = { error: t }; }
                if (!resp.ok) throw new Error(d.error || 'HTTP ' + resp.status);
                return d;
              });
            }
            var reader = resp.body.getReader(), dec = new TextDecoder(), buf = '', result = null;
            var handle = function (line) {
              if (!line.trim()) return;
              var p = JSON.parse(line);
              if (p.type === 'result') result = p.result;
              else if (p.type === 'error') throw new Error(p.error);
              else if (p.stage === 'save' && p.total) set(5 + Math.min(90, 90 * p.bytes / p.total), 'saving ' + HR.fmt.bytes(p.bytes) + ' of about ' + HR.fmt.bytes(p.total));
              else set(p.stage === 'done' ? 97 : 4, (p.stage || p.type) + '…');
            };
            var pump = function () {
              return reader.read().then(function (r) {
                if (r.value) buf += dec.decode(r.value, { stream: true });
                var lines = buf.split('\n');
                buf = lines.pop();
                lines.forEach(handle);
                if (r.done) { handle(buf); if (!result) throw new Error('the progress stream ended without a result'); return result; }
                return pump();
              });
            };
            return pump();
          }).then(function (res) {
            set(100, 'done: ' + (res.tarball_path || '') + (res.size ? ' (' + HR.fmt.bytes(res.size) + ')' : ''));
            self.msg = res.message;
            self.err = null;
            return self.load();
          }).catch(function (e) {
            set(0, 'failed');
            self.err = e;
          }).then(function () { self.$set(self.busy, name, false); });
        }
      }
    }
  });
})();
