/* Tasks pages: the filterable, paged task list (GET /api/tasks?view=summary)
 * with batches grouped, and the task page (/ui/task/:id) with its details,
 * live stdout/stderr and the kill/pause/resume buttons. */
(function () {
  'use strict';

  var STATUSES = ['pending', 'assigning', 'running', 'paused', 'completed', 'failed', 'killed', 'killed_oom', 'lost'];
  var FINAL = { completed: 1, failed: 1, killed: 1, killed_oom: 1, lost: 1 };
  var PAGE = 50;
  var HIDDEN = '<' + 'hidden>'; // an env value the caller may not see

  // Styles of these pages (app.css is the shell's).
  var css = document.createElement('style');
  css.textContent =
    '.hr-log{max-height:24rem;min-height:3rem;overflow:auto;white-space:pre-wrap;overflow-wrap:anywhere;background:#0d1117;color:#e6edf3;font-size:.8rem}' +
    '.hr-tasks td.hr-cmd{max-width:40rem}.hr-cmd-phone{max-height:4.5em;overflow:hidden}' +
    '.hr-dl dt{font-weight:600}.hr-dl dd{margin-bottom:.35rem}' +
    '.hr-term{background:#000;padding:4px;min-height:20rem}' +
    '.hr-copy code{user-select:all}';
  document.head.appendChild(css);

  /** Helpers shared by the dash2 pages (tasks, submit, vps, environments). */
  var U = (HR.taskUtil = {
    STATUSES: STATUSES,
    final: function (s) { return !!FINAL[s]; },
    /**
     * raw fetches path and resolves to {status, text, headers}; a 401 emits
     * "unauthorized" and rejects with HR.AuthError, like HR.api.
     */
    raw: function (path, opts) {
      opts = opts || {};
      var init = { method: opts.method || 'GET', credentials: 'same-origin', headers: opts.headers || {} };
      if (init.method !== 'GET') init.headers['X-Hakuriver-CSRF'] = HR.cookie('hakuriver_csrf');
      if (opts.body !== undefined) {
        init.headers['Content-Type'] = 'application/json';
        init.body = JSON.stringify(opts.body);
      }
      return fetch(path, init).then(function (resp) {
        if (resp.status === 401) {
          var ae = new HR.AuthError('not signed in');
          HR.events.emit('unauthorized', ae);
          throw ae;
        }
        return resp.text().then(function (text) { return { status: resp.status, text: text, headers: resp.headers, resp: resp }; });
      });
    },
    /** elapsed is the seconds a task ran (or has been running), null when it never started. */
    elapsed: function (t, now) {
      if (!t || !t.started_at) return null;
      var end = t.completed_at ? new Date(t.completed_at).getTime() : (now || Date.now());
      return Math.max(0, (end - new Date(t.started_at).getTime()) / 1000);
    },
    /** cmdline renders what a task runs: "VPS" for a VPS (its command is its SSH key). */
    cmdline: function (t) {
      if (t.task_type === 'vps') return 'VPS';
      return HR.fmt.cmd(t.command, t.arguments) + (t.truncated ? ' …' : '');
    },
    /** jumpHost is the first replica SSH proxy of a /api/cluster answer, as HOST:PORT. */
    jumpHost: function (cluster) {
      var reps = (cluster && cluster.replicas) || [];
      for (var i = 0; i < reps.length; i++) {
        var p = reps[i].ssh_proxy;
        if (!p) continue;
        var m = /^(.*):(\d+)$/.exec(p);
        if (!m) continue;
        var host = m[1].replace(/^\[|\]$/g, '');
        if (host === '0.0.0.0' || host === '::' || host === '') host = location.hostname;
        if (host.indexOf(':') >= 0) host = '[' + host + ']';
        return host + ':' + m[2];
      }
      return '';
    },
    /** kill asks to kill task id. */
    kill: function (id) { return HR.api('/api/kill/' + encodeURIComponent(id), { method: 'POST' }); },
    /** copy puts text on the clipboard (when the browser allows it). */
    copy: function (text) {
      if (navigator.clipboard && navigator.clipboard.writeText) return navigator.clipboard.writeText(text).catch(function () {});
      return Promise.resolve();
    }
  });

  function readQuery() {
    var q = new URLSearchParams(location.search);
    var f = {};
    ['status', 'node', 'user', 'batch', 'type', 'text'].forEach(function (k) { f[k] = q.get(k) || ''; });
    return f;
  }

  HR.page('tasks', {
    path: '/tasks',
    title: 'Tasks',
    nav: true,
    order: 30,
    component: {
      props: ['params'],
      data: function () {
        return { f: readQuery(), rows: [], more: false, next: '', err: null, loading: false, nodes: [], now: Date.now(), busy: {}, msg: '' };
      },
      template: `
<div>
  <div class="d-flex flex-wrap align-items-center gap-2 mb-2">
    <h1 class="h4 me-auto mb-0">Tasks</h1>
    <a class="btn btn-sm btn-primary" href="/ui/submit" id="tasks-submit">Submit a task</a>
  </div>
  <form class="row g-2 mb-3" id="tasks-filters" @submit.prevent="apply">
    <div class="col-6 col-md-2"><label class="form-label small mb-0" for="f-status">Status</label>
      <select id="f-status" class="form-select form-select-sm" v-model="f.status" @change="apply"><option value="">any</option><option v-for="s in statuses" :value="s">{{ s }}</option></select></div>
    <div class="col-6 col-md-2"><label class="form-label small mb-0" for="f-node">Node</label>
      <select id="f-node" class="form-select form-select-sm" v-model="f.node" @change="apply"><option value="">any</option><option v-for="n in nodes" :value="n">{{ n }}</option></select></div>
    <div class="col-6 col-md-2"><label class="form-label small mb-0" for="f-type">Type</label>
      <select id="f-type" class="form-select form-select-sm" v-model="f.type" @change="apply"><option value="">any</option><option value="command">command</option><option value="vps">VPS</option></select></div>
    <div class="col-6 col-md-2"><label class="form-label small mb-0" for="f-user">Owner</label>
      <input id="f-user" class="form-control form-control-sm" v-model.trim="f.user" placeholder="account" @change="apply"></div>
    <div class="col-6 col-md-1"><label class="form-label small mb-0" for="f-batch">Batch</label>
      <input id="f-batch" class="form-control form-control-sm" v-model.trim="f.batch" inputmode="numeric" placeholder="ID" @change="apply"></div>
    <div class="col-6 col-md-2"><label class="form-label small mb-0" for="f-text">Command contains</label>
      <input id="f-text" class="form-control form-control-sm" v-model="f.text" placeholder="text" @change="apply"></div>
    <div class="col-12 col-md-1 d-flex align-items-end gap-1">
      <button class="btn btn-sm btn-outline-primary" type="submit" id="f-apply">Filter</button>
      <button class="btn btn-sm btn-outline-secondary" type="button" @click="clear" title="Clear the filters">&times;</button>
    </div>
  </form>
  <hr-error :err="err"></hr-error>
  <div v-if="msg" class="alert alert-info py-2 hr-wrap">{{ msg }}</div>
  <div class="table-responsive">
  <table class="table table-sm table-hover bg-white hr-tasks" id="tasks-table">
    <thead><tr><th>ID</th><th class="d-none d-sm-table-cell">Status</th><th class="d-none d-md-table-cell">Command</th><th class="d-none d-md-table-cell">Owner</th><th class="d-none d-md-table-cell">Node</th><th class="d-none d-sm-table-cell">Exit</th><th class="d-none d-sm-table-cell">Elapsed</th><th class="d-none d-lg-table-cell">Submitted</th></tr></thead>
    <tbody>
      <template v-for="g in groups">
        <tr v-if="g.batch" class="table-light hr-batch" :key="'b' + g.batch" :id="'batch-' + g.batch">
          <td colspan="8">
            <div class="d-flex flex-wrap align-items-center gap-2">
              <strong>Batch <a :href="'/ui/tasks?batch=' + g.batch" @click.prevent="filterBatch(g.batch)">{{ g.batch }}</a></strong>
              <span class="hr-muted">{{ g.rows.length }} tasks listed<span v-if="g.array">, array</span> · {{ g.summary }}</span>
              <button v-if="g.active && canKill" class="btn btn-sm btn-outline-danger ms-auto" type="button" :disabled="busy['b' + g.batch]" @click="killBatch(g.batch)" :id="'kill-batch-' + g.batch">Kill batch</button>
            </div>
          </td>
        </tr>
        <tr v-for="t in g.rows" :key="t.task_id" :id="'task-row-' + t.task_id">
          <td><span class="text-nowrap"><hr-link :to="'/task/' + t.task_id">{{ t.task_id }}</hr-link><span v-if="t.array_index != null" class="hr-muted"> [{{ t.array_index }}]</span><span v-if="t.name" class="hr-muted"> {{ t.name }}</span></span>
            <div class="d-sm-none small"><hr-status :s="t.status"></hr-status><span v-if="t.exit_code != null"> · exit {{ t.exit_code }}</span><span v-if="t.started_at"> · {{ elapsed(t) }}</span><span v-if="t.owner" class="hr-muted"> · {{ t.owner }}</span></div>
            <div class="d-md-none hr-cmd hr-cmd-phone" :class="{'fst-italic': t.task_type === 'vps'}">{{ cmd(t) }}</div></td>
          <td class="d-none d-sm-table-cell"><hr-status :s="t.status"></hr-status></td>
          <td class="hr-cmd d-none d-md-table-cell" :class="{'fst-italic': t.task_type === 'vps'}">{{ cmd(t) }}</td>
          <td class="d-none d-md-table-cell">{{ t.owner || '-' }}</td>
          <td class="d-none d-md-table-cell text-nowrap">{{ t.assigned_node || t.target_node || '-' }}</td>
          <td class="d-none d-sm-table-cell" :class="{'text-danger': t.exit_code != null && t.exit_code !== 0}" :title="t.error_message">{{ t.exit_code != null ? t.exit_code : (t.error_message ? '!' : '-') }}</td>
          <td class="text-nowrap d-none d-sm-table-cell">{{ elapsed(t) }}</td>
          <td class="d-none d-lg-table-cell text-nowrap"><hr-time :ts="t.submitted_at"></hr-time></td>
        </tr>
      </template>
      <tr v-if="!rows.length && !loading"><td colspan="8" class="hr-muted">No tasks match.</td></tr>
    </tbody>
  </table>
  </div>
  <button v-if="more" class="btn btn-sm btn-outline-secondary" type="button" @click="loadMore" :disabled="loading" id="tasks-more">Load more</button>
  <span v-if="loading" class="hr-muted ms-2">loading…</span>
</div>`,
      computed: {
        statuses: function () { return STATUSES; },
        canKill: function () { return HR.can('user'); },
        groups: function () {
          // Consecutive rows of one batch of several tasks share a header.
          var out = [], counts = {};
          this.rows.forEach(function (t) { counts[t.batch_id] = (counts[t.batch_id] || 0) + 1; });
          this.rows.forEach(function (t) {
            var b = counts[t.batch_id] > 1 && t.batch_id !== '0' ? t.batch_id : '';
            var last = out[out.length - 1];
            if (last && last.batch && last.batch === b) last.rows.push(t);
            else out.push({ batch: b, rows: [t] });
          });
          out.forEach(function (g) {
            if (!g.batch) return;
            var by = {};
            g.rows.forEach(function (t) { by[t.status] = (by[t.status] || 0) + 1; if (!FINAL[t.status]) g.active = true; if (t.array_index != null) g.array = true; });
            g.summary = Object.keys(by).map(function (s) { return by[s] + ' ' + s; }).join(', ');
          });
          return out;
        }
      },
      created: function () {
        var self = this;
        HR.api('/api/nodes').then(function (ns) { self.nodes = (ns || []).map(function (n) { return n.hostname; }); }).catch(function () {});
        HR.follow(self, 'applied', function () { self.load(false); }, 500);
        self.timer = setInterval(function () { self.now = Date.now(); }, 1000);
      },
      beforeDestroy: function () { clearInterval(this.timer); },
      methods: {
        cmd: U.cmdline,
        elapsed: function (t) { var s = U.elapsed(t, this.now); return s == null ? '-' : HR.fmt.duration(s); },
        query: function (after, limit) {
          var q = { view: 'summary', limit: limit || PAGE, after: after };
          var f = this.f;
          Object.keys(f).forEach(function (k) { q[k] = k === 'text' ? f[k] : String(f[k]).trim(); });
          return '/api/tasks' + HR.query(q);
        },
        /** load fetches the first pages again (as many rows as shown), or the next page. */
        load: function (append) {
          var self = this;
          var limit = append ? PAGE : Math.min(Math.max(PAGE, self.rows.length), 1000);
          self.loading = true;
          return U.raw(self.query(append ? self.next : '', limit)).then(function (r) {
            var data = null;
            try { data = JSON.parse(r.text); } catch (e) { data = { error: r.text }; }
            if (r.status !== 200) throw new Error((data && data.error) || ('HTTP ' + r.status));
            self.rows = append ? self.rows.concat(data) : data;
            self.more = r.headers.get('X-Hakuriver-More') === 'true';
            self.next = r.headers.get('X-Hakuriver-Next-After') || '';
            self.err = null;
          }).catch(function (e) { self.err = e; }).then(function () { self.loading = false; });
        },
        loadMore: function () { this.load(true); },
        apply: function () {
          var f = this.f, q = {};
          Object.keys(f).forEach(function (k) { if (f[k]) q[k] = f[k]; });
          history.replaceState({}, '', '/ui/tasks' + HR.query(q));
          this.rows = [];
          this.load(false);
        },
        clear: function () {
          var f = this.f;
          Object.keys(f).forEach(function (k) { f[k] = ''; });
          this.apply();
        },
        filterBatch: function (b) { this.f.batch = String(b); this.apply(); },
        killBatch: function (b) {
          var self = this;
          if (!confirm('Kill every unfinished task of batch ' + b + '?')) return;
          self.$set(self.busy, 'b' + b, true);
          // Every unfinished task of the batch, not only those listed.
          var ids = [];
          var page = function (after) {
            return HR.api('/api/tasks' + HR.query({ view: 'summary', batch: b, limit: 1000, after: after })).then(function (rows) {
              rows.forEach(function (t) { if (!FINAL[t.status]) ids.push(t.task_id); });
              return rows.length === 1000 ? page(rows[rows.length - 1].task_id) : null;
            });
          };
          page('').then(function () {
            return Promise.all(ids.map(function (id) { return U.kill(id).catch(function (e) { return e; }); }));
          }).then(function (res) {
            var bad = res.filter(function (r) { return r instanceof Error; });
            self.msg = 'Kill requested for ' + (ids.length - bad.length) + ' task(s) of batch ' + b + (bad.length ? '; ' + bad.length + ' refused: ' + bad[0].message : '') + '.';
            self.load(false);
          }).catch(function (e) { self.err = e; }).then(function () { self.$set(self.busy, 'b' + b, false); });
        }
      }
    }
  });

  /** <hr-log> follows one stream of a task: GET /api/task/{id}/{stream}?offset=N. */
  var MAX_SHOWN = 2 << 20; // characters kept in the viewer (the tail)
  var TAIL = 256 << 10; // bytes read when a viewer opens
  Vue.component('hr-log', {
    props: ['id', 'stream', 'running'],
    data: function () { return { text: '', offset: 0, note: 'not generated yet', err: null, dropped: false }; },
    template: `
<div class="card mb-3">
  <div class="card-header d-flex flex-wrap align-items-center gap-2 py-1">
    <strong>{{ stream }}</strong>
    <span class="hr-muted">{{ note }}</span>
    <span v-if="running" class="badge bg-success">following</span>
    <a class="ms-auto small" :href="'/api/task/' + id + '/' + stream" target="_blank" rel="noopener">raw</a>
  </div>
  <pre class="hr-log m-0 p-2" :id="'task-' + stream" ref="pre" tabindex="0" :aria-label="stream + ' of task ' + id"><span v-if="dropped" class="hr-muted">[earlier output not shown: see raw]\n</span>{{ text }}</pre>
  <div v-if="err" class="card-footer small text-danger">{{ err }}</div>
</div>`,
    created: function () { this.fetch(); },
    methods: {
      fetch: function () {
        var self = this;
        if (self.inflight) return self.inflight;
        // The first read takes the last TAIL bytes only: a large log opens
        // at its end without downloading all of it.
        var first = !self.opened;
        var q = first ? 'tail=' + TAIL : 'offset=' + self.offset;
        self.inflight = U.raw('/api/task/' + encodeURIComponent(self.id) + '/' + self.stream + '?missing=empty&' + q).then(function (r) {
          if (r.status === 200 && r.headers.get('X-Hakuriver-Log-Missing') === 'true') { self.note = 'not generated yet'; self.err = null; return; }
          if (r.status !== 200) {
            var m = r.text;
            try { m = JSON.parse(r.text).error; } catch (e) { /* plain text */ }
            self.err = m;
            return;
          }
          self.err = null;
          self.opened = true;
          if (first && parseInt(r.headers.get('X-Hakuriver-Start'), 10) > 0) self.dropped = true;
          var next = parseInt(r.headers.get('X-Hakuriver-Offset'), 10);
          if (!isNaN(next)) self.offset = next;
          if (r.text) {
            var pre = self.$refs.pre;
            var atEnd = !pre || pre.scrollHeight - pre.scrollTop - pre.clientHeight < 24;
            var t = self.text + r.text;
            if (t.length > MAX_SHOWN) { t = t.slice(t.length - MAX_SHOWN); self.dropped = true; }
            self.text = t;
            if (atEnd) self.$nextTick(function () { if (self.$refs.pre) self.$refs.pre.scrollTop = self.$refs.pre.scrollHeight; });
          }
          self.note = HR.fmt.bytes(self.offset) === '-' ? 'empty' : HR.fmt.bytes(self.offset);
        }).catch(function (e) { self.err = e.message; }).then(function () { self.inflight = null; });
        return self.inflight;
      }
    }
  });

  HR.page('task', {
    path: '/task/:id',
    title: 'Task',
    component: {
      props: ['params'],
      data: function () { return { t: null, err: null, actErr: null, msg: '', busy: false, now: Date.now(), cluster: null, term: false }; },
      template: `
<div>
  <nav aria-label="breadcrumb"><ol class="breadcrumb mb-2"><li class="breadcrumb-item"><a href="/ui/tasks">Tasks</a></li><li class="breadcrumb-item active" aria-current="page">{{ params.id }}</li></ol></nav>
  <hr-error :err="err"></hr-error>
  <div v-if="t" id="task-page">
    <div class="d-flex flex-wrap align-items-center gap-2 mb-3">
      <h1 class="h4 mb-0">Task {{ t.task_id }} <small v-if="t.task_type === 'vps'" class="badge bg-info text-dark">VPS</small></h1>
      <hr-status :s="t.status" id="task-status" class="fs-5"></hr-status>
      <div class="ms-auto d-flex gap-2" v-if="mayAct">
        <button v-if="t.status === 'running'" id="task-pause" class="btn btn-sm btn-outline-warning" type="button" :disabled="busy" @click="act('pause')">Pause</button>
        <button v-if="t.status === 'paused'" id="task-resume" class="btn btn-sm btn-outline-success" type="button" :disabled="busy" @click="act('resume')">Resume</button>
        <button v-if="!final" id="task-kill" class="btn btn-sm btn-danger" type="button" :disabled="busy" @click="kill">{{ t.task_type === 'vps' ? 'Stop' : 'Kill' }}</button>
      </div>
    </div>
    <hr-error :err="actErr"></hr-error>
    <div v-if="msg" class="alert alert-info py-2 hr-wrap" id="task-msg">{{ msg }}</div>
    <div class="row g-3">
      <div class="col-12 col-xl-6">
        <div class="card"><div class="card-body">
          <dl class="row mb-0 hr-dl">
            <template v-if="t.task_type === 'vps'">
              <dt class="col-sm-3">SSH key</dt><dd class="col-sm-9 hr-cmd" id="task-sshkey">{{ t.command }}</dd>
              <dt class="col-sm-3">Connect</dt><dd class="col-sm-9">
                <div v-if="t.ssh_port"><code class="hr-wrap">hakuriver ssh {{ t.task_id }}</code></div>
                <div v-if="t.ssh_port && jump"><code class="hr-wrap">ssh -J {{ t.task_id }}@{{ jump }} root@{{ t.task_id }}</code></div>
                <span v-if="!t.ssh_port" class="hr-muted">once the VPS runs</span></dd>
            </template>
            <template v-else>
              <dt class="col-sm-3">Command</dt><dd class="col-sm-9 hr-cmd" id="task-command">{{ cmd }}</dd>
            </template>
            <template v-if="t.working_dir"><dt class="col-sm-3">Working dir</dt><dd class="col-sm-9 hr-wrap">{{ t.working_dir }}</dd></template>
            <dt class="col-sm-3">Environment</dt><dd class="col-sm-9">{{ env }}</dd>
            <template v-if="envVars.length"><dt class="col-sm-3">Env vars</dt><dd class="col-sm-9" id="task-env">
              <div v-for="kv in envVars" class="hr-cmd"><span>{{ kv[0] }}</span>=<span v-if="hidden(kv[1])" class="badge bg-secondary" title="hidden: only its owner or an operator sees the value">hidden</span><span v-else>{{ kv[1] }}</span></div></dd></template>
            <template v-if="t.name"><dt class="col-sm-3">Name</dt><dd class="col-sm-9" id="task-name">{{ t.name }}</dd></template>
            <dt class="col-sm-3">Owner</dt><dd class="col-sm-9">{{ t.owner || '-' }}<span v-if="t.run_as" class="hr-muted"> (runs as {{ t.run_as }})</span></dd>
            <dt class="col-sm-3">Resources</dt><dd class="col-sm-9" id="task-resources">{{ t.required_cores }} core(s) · {{ mem }} memory · {{ gpus }}</dd>
            <dt class="col-sm-3">Target</dt><dd class="col-sm-9">{{ target }}</dd>
            <dt class="col-sm-3">Placed on</dt><dd class="col-sm-9" id="task-node"><hr-link v-if="t.assigned_node" :to="'/node/' + t.assigned_node">{{ t.assigned_node }}</hr-link><span v-else>-</span><span v-if="t.assignment_suspicion_count" class="hr-muted"> ({{ t.assignment_suspicion_count }} missed report(s))</span></dd>
            <template v-if="t.batch_id && t.batch_id !== '0' && t.batch_id !== t.task_id"><dt class="col-sm-3">Batch</dt><dd class="col-sm-9"><a :href="'/ui/tasks?batch=' + t.batch_id">{{ t.batch_id }}</a><span v-if="t.array_index != null"> · array index {{ t.array_index }}</span><span v-if="t.array_throttle"> (at most {{ t.array_throttle }} at once)</span></dd></template>
            <template v-if="t.after && t.after.length"><dt class="col-sm-3">After</dt><dd class="col-sm-9"><span v-for="(a, i) in t.after"><span v-if="i">, </span><hr-link :to="'/task/' + a">{{ a }}</hr-link></span></dd></template>
            <template v-if="t.priority"><dt class="col-sm-3">Priority</dt><dd class="col-sm-9">{{ t.priority }}</dd></template>
            <template v-if="t.time_limit_seconds"><dt class="col-sm-3">Time limit</dt><dd class="col-sm-9">{{ dur(t.time_limit_seconds) }}</dd></template>
            <dt class="col-sm-3">Exit code</dt><dd class="col-sm-9" id="task-exit" :class="{'text-danger': t.exit_code != null && t.exit_code !== 0}">{{ t.exit_code != null ? t.exit_code : '-' }}</dd>
            <template v-if="t.error_message"><dt class="col-sm-3">Error</dt><dd class="col-sm-9 hr-wrap text-danger" id="task-error">{{ t.error_message }}</dd></template>
          </dl>
        </div></div>
      </div>
      <div class="col-12 col-xl-6">
        <div class="card"><div class="card-body">
          <h2 class="h6">Timeline</h2>
          <ol class="list-unstyled mb-0" id="task-timeline">
            <li><span class="hr-status hr-s-pending">submitted</span> <hr-time :ts="t.submitted_at"></hr-time></li>
            <li v-if="t.started_at"><span class="hr-status hr-s-running">started</span> <hr-time :ts="t.started_at"></hr-time> <span class="hr-muted">after {{ dur(waited) }} in the queue</span></li>
            <li v-if="t.completed_at"><span class="hr-status" :class="'hr-s-' + t.status">{{ t.status }}</span> <hr-time :ts="t.completed_at"></hr-time> <span class="hr-muted" v-if="ran != null">after running {{ dur(ran) }}</span></li>
            <li v-else-if="t.started_at" class="hr-muted">{{ t.status }} for {{ dur(ran) }}</li>
          </ol>
          <template v-if="t.placements && t.placements.length">
            <h2 class="h6 mt-3">Placement history</h2>
            <ol class="list-unstyled mb-0" id="task-placements">
              <li v-for="(p, i) in t.placements" :key="i" :data-event="p.event" :data-node="p.node"><span class="hr-status" :class="'hr-s-' + placementClass(p.event)">{{ p.event }}</span> {{ p.event === 'requeued' ? 'from' : 'on' }} <hr-link :to="'/node/' + p.node">{{ p.node }}</hr-link> <hr-time :ts="p.at"></hr-time></li>
            </ol>
            <div class="hr-muted small" v-if="t.placements.length >= 16">the last 16 events</div>
          </template>
          <div class="hr-muted mt-2 hr-wrap" v-if="t.stdout_path">logs: {{ t.stdout_path }}, {{ t.stderr_path }}</div>
        </div></div>
      </div>
    </div>
    <div v-if="t.status === 'running' && mayAct" class="card mt-3"><div class="card-body">
      <div class="d-flex align-items-center gap-2 mb-2"><h2 class="h6 mb-0">Access</h2>
        <button v-if="!term" id="task-terminal-open" class="btn btn-sm btn-outline-dark ms-auto" type="button" @click="term = true">Open terminal</button></div>
      <hr-access-commands :id="t.task_id" :vps="t.task_type === 'vps'"></hr-access-commands>
    </div></div>
    <hr-exec-terminal v-if="term && t.status === 'running'" :id="t.task_id" :key="'term-' + t.task_id" @close="term = false"></hr-exec-terminal>
    <p v-if="t.task_type !== 'vps' && !mayAct" class="hr-muted mt-3" id="task-logs-forbidden">Its output is readable by its owner ({{ t.owner || 'anonymous' }}) and operators.</p>
    <div v-if="t.task_type !== 'vps' && mayAct" class="mt-3">
      <hr-log ref="stdout" :id="t.task_id" stream="stdout" :running="t.status === 'running'"></hr-log>
      <hr-log ref="stderr" :id="t.task_id" stream="stderr" :running="t.status === 'running'"></hr-log>
    </div>
  </div>
  <p v-else-if="!err" class="hr-muted">loading…</p>
</div>`,
      computed: {
        final: function () { return !this.t || !!FINAL[this.t.status]; },
        /** mayAct: the server lets its owner and operators read its logs and act on it. */
        mayAct: function () {
          var me = HR.me || {};
          return HR.can('operator') || (HR.can('user') && !!me.user && me.user === this.t.owner);
        },
        cmd: function () { return HR.fmt.cmd(this.t.command, this.t.arguments); },
        env: function () {
          var c = this.t.container_name;
          return !c || c === 'NULL' ? 'native (no container)' : c;
        },
        envVars: function () {
          var e = this.t.env_vars || {};
          return Object.keys(e).sort().map(function (k) { return [k, e[k]]; });
        },
        mem: function () { return this.t.required_memory_bytes ? HR.fmt.bytes(this.t.required_memory_bytes) : 'no limit of'; },
        gpus: function () {
          var g = this.t.required_gpus || [];
          if (g.length) return 'GPU ' + g.join(', ');
          if (this.t.gpu_count) return this.t.gpu_count + ' GPU(s), any';
          return 'no GPU';
        },
        target: function () {
          var t = this.t;
          if (!t.target_node) return 'any node';
          return t.target_node + (t.target_numa_node_id != null ? ' NUMA ' + t.target_numa_node_id : '');
        },
        waited: function () {
          return (new Date(this.t.started_at).getTime() - new Date(this.t.submitted_at).getTime()) / 1000;
        },
        ran: function () { return U.elapsed(this.t, this.now); },
        jump: function () { return U.jumpHost(this.cluster); }
      },
      created: function () {
        var self = this;
        HR.follow(self, 'applied', function () { self.load(); }, 300);
        // Logs change without log entries: follow them every second while
        // the task runs (a status change reads them once more).
        self.timer = setInterval(function () {
          self.now = Date.now();
          if (self.t && self.t.status === 'running') self.logs();
        }, 1000);
      },
      beforeDestroy: function () { clearInterval(this.timer); },
      methods: {
        dur: function (s) { return HR.fmt.duration(s, false); },
        hidden: function (v) { return v === HIDDEN; },
        placementClass: function (e) { return { placed: 'assigning', started: 'running', requeued: 'pending', lost: 'lost' }[e] || 'pending'; },
        load: function () {
          var self = this;
          return HR.api('/api/status/' + encodeURIComponent(self.params.id)).then(function (t) {
            var was = self.t && self.t.status;
            self.t = t;
            self.err = null;
            document.title = 'Task ' + t.task_id + ' · HakuRiver HA';
            if (t.task_type === 'vps' && !self.cluster) HR.api('/api/cluster').then(function (c) { self.cluster = c; }).catch(function () {});
            // A task that just ended: read the last of its output once.
            if (was && was !== t.status) self.$nextTick(function () { self.logs(); });
          }).catch(function (e) { self.err = e; });
        },
        logs: function () {
          ['stdout', 'stderr'].forEach(function (s) { if (this.$refs[s]) this.$refs[s].fetch(); }, this);
        },
        kill: function () {
          var self = this;
          if (!confirm((self.t.task_type === 'vps' ? 'Stop VPS ' : 'Kill task ') + self.t.task_id + '?')) return;
          self.busy = true;
          U.kill(self.t.task_id).then(function (r) { self.msg = r && r.message; self.actErr = null; return self.load(); })
            .catch(function (e) { self.actErr = e; }).then(function () { self.busy = false; });
        },
        act: function (what) {
          var self = this;
          self.busy = true;
          HR.api('/api/command/' + encodeURIComponent(self.t.task_id) + '/' + what, { method: 'POST' })
            .then(function (r) { self.msg = r && r.message; self.actErr = null; return self.load(); })
            .catch(function (e) { self.actErr = e; }).then(function () { self.busy = false; });
        }
      }
    }
  });
})();
