/* Overview: cluster health at a glance. Replicas come from
 * GET /api/cluster/replicas (each replica's own figures), runners and their
 * accounting from GET /api/nodes, task counts from the change feed (no task
 * list is read), the doctor's verdict from GET /api/doctor. */
(function () {
  'use strict';
  var statuses = ['pending', 'assigning', 'running', 'paused', 'completed', 'failed', 'killed', 'killed_oom', 'lost'];

  HR.page('overview', {
    path: '/',
    title: 'Overview',
    nav: true,
    order: 10,
    component: {
      props: ['params'],
      data: function () {
        return { replicas: null, nodes: null, counts: HR.feed ? HR.feed.counts : null, doctor: null, doctorErr: null, err: null, states: HR.nodeStates };
      },
      computed: {
        leader: function () {
          var l = (this.replicas || []).filter(function (r) { return r.state === 'leader'; })[0];
          return l ? l.id : (HR.feed && HR.feed.leader) || '';
        },
        // term is the leader's term as its replica reported it.
        term: function () {
          var l = (this.replicas || []).filter(function (r) { return r.state === 'leader'; })[0];
          return l ? l.term : '-';
        },
        runnerStates: function () {
          var out = {};
          HR.nodeStates.forEach(function (s) { out[s] = 0; });
          (this.nodes || []).forEach(function (n) { out[HR.nodeState(n)]++; });
          return out;
        },
        totals: function () {
          var t = { cores: 0, coresUsed: 0, mem: 0, memUsed: 0, gpus: 0, gpusUsed: 0 };
          (this.nodes || []).forEach(function (n) {
            if (n.status !== 'online') return;
            t.cores += n.total_cores;
            t.coresUsed += n.cores_in_use;
            t.mem += n.memory_total_bytes;
            t.memUsed += n.memory_in_use_bytes;
            t.gpus += (n.gpu_info || []).length;
            t.gpusUsed += (n.gpus_in_use || []).length;
          });
          return t;
        },
        taskRows: function () {
          var c = this.counts || {};
          return statuses.map(function (s) { return { status: s, n: c[s] || 0 }; });
        },
        totalTasks: function () {
          var c = this.counts || {}, n = 0;
          Object.keys(c).forEach(function (k) { n += c[k]; });
          return n;
        },
        queueLength: function () { return this.counts ? (this.counts.pending || 0) : null; },
        verdict: function () {
          if (!this.doctor) return null;
          var v = { ok: 0, warn: 0, fail: 0 };
          (this.doctor.checks || []).forEach(function (c) { v[c.status] = (v[c.status] || 0) + 1; });
          v.word = v.fail ? 'fail' : v.warn ? 'warn' : 'ok';
          return v;
        }
      },
      template:
        '<div id="overview">' +
        '<h1 class="h4 mb-3">Overview</h1>' +
        '<hr-error :err="err"></hr-error>' +
        '<div class="row g-3 mb-3">' +
        ' <div class="col-6 col-lg-3"><div class="card h-100"><div class="card-body">' +
        '  <div class="hr-muted">Leader</div><div id="overview-leader" class="hr-card-figure hr-wrap">{{ leader || "none" }}</div>' +
        '  <div class="hr-muted" v-if="replicas">{{ replicas.length }} replicas, term {{ term }}</div></div></div></div>' +
        ' <div class="col-6 col-lg-3"><div class="card h-100"><div class="card-body">' +
        '  <div class="hr-muted">Runners</div><div id="overview-runners" class="hr-card-figure">{{ nodes ? nodes.length - runnerStates.offline : "…" }}<small class="hr-muted"> / {{ nodes ? nodes.length : "…" }} online</small></div>' +
        '  <div class="small"><span v-for="s in states" :key="s" class="me-2" :id="\'overview-runners-\' + s"><hr-status :s="s"></hr-status> {{ runnerStates[s] }}</span></div></div></div></div>' +
        ' <div class="col-6 col-lg-3"><div class="card h-100"><div class="card-body">' +
        '  <div class="hr-muted">Tasks</div><div id="overview-tasks-total" class="hr-card-figure">{{ counts ? totalTasks : "…" }}</div>' +
        '  <div class="hr-muted">queue <hr-link id="overview-queue" to="/queue">{{ queueLength === null ? "…" : queueLength }} pending</hr-link></div></div></div></div>' +
        ' <div class="col-6 col-lg-3"><div class="card h-100"><div class="card-body">' +
        '  <div class="hr-muted">Doctor (this replica)</div>' +
        '  <div id="overview-doctor" class="hr-card-figure"><hr-link to="/doctor"><hr-status v-if="verdict" :s="verdict.word"></hr-status><span v-else-if="doctorErr" class="hr-s-error">error</span><span v-else>…</span></hr-link></div>' +
        '  <div class="hr-muted" v-if="verdict">{{ verdict.fail }} fail, {{ verdict.warn }} warn, {{ verdict.ok }} ok · <hr-time :ts="doctor.time"></hr-time></div>' +
        '  <div class="hr-muted hr-wrap" v-if="doctorErr">{{ doctorErr.message }}</div></div></div></div>' +
        '</div>' +
        '<div class="row g-3 mb-3">' +
        ' <div class="col-12 col-md-4"><div class="card h-100"><div class="card-body"><div class="hr-muted">Cores in use</div>' +
        '  <div id="overview-cores" class="hr-card-figure">{{ totals.coresUsed }} / {{ totals.cores }}</div>' +
        '  <div class="progress" role="progressbar" aria-label="cores in use" :aria-valuenow="pct(totals.coresUsed, totals.cores)" aria-valuemin="0" aria-valuemax="100"><div class="progress-bar" :style="{width: pct(totals.coresUsed, totals.cores) + \'%\'}"></div></div></div></div></div>' +
        ' <div class="col-12 col-md-4"><div class="card h-100"><div class="card-body"><div class="hr-muted">Memory reserved</div>' +
        '  <div id="overview-memory" class="hr-card-figure">{{ fmtBytes(totals.memUsed) }} / {{ fmtBytes(totals.mem) }}</div>' +
        '  <div class="progress" role="progressbar" aria-label="memory reserved" :aria-valuenow="pct(totals.memUsed, totals.mem)" aria-valuemin="0" aria-valuemax="100"><div class="progress-bar bg-info" :style="{width: pct(totals.memUsed, totals.mem) + \'%\'}"></div></div></div></div></div>' +
        ' <div class="col-12 col-md-4"><div class="card h-100"><div class="card-body"><div class="hr-muted">GPUs in use</div>' +
        '  <div id="overview-gpus" class="hr-card-figure">{{ totals.gpusUsed }} / {{ totals.gpus }}</div>' +
        '  <div class="progress" role="progressbar" aria-label="GPUs in use" :aria-valuenow="pct(totals.gpusUsed, totals.gpus)" aria-valuemin="0" aria-valuemax="100"><div class="progress-bar bg-success" :style="{width: pct(totals.gpusUsed, totals.gpus) + \'%\'}"></div></div></div></div></div>' +
        '</div>' +
        '<div class="row g-3">' +
        ' <div class="col-12 col-lg-7"><div class="card"><div class="card-body">' +
        '  <h2 class="h6">Replicas</h2>' +
        '  <div class="table-responsive"><table id="overview-replicas" class="table table-sm mb-0"><thead><tr><th scope="col">ID</th><th scope="col">Role</th><th scope="col">Term</th><th scope="col">Applied</th><th scope="col" class="d-none d-md-table-cell">Commit</th><th scope="col">Lag</th><th scope="col" class="d-none d-md-table-cell">API</th></tr></thead>' +
        '  <tbody><tr v-for="r in replicas || []" :key="r.id" :data-replica="r.id"><td>{{ r.id }}</td><td><hr-status :s="r.state"></hr-status> <span v-if="r.suffrage && r.suffrage !== \'Voter\'" class="hr-muted">{{ r.suffrage }}</span></td>' +
        '  <td>{{ r.term || "-" }}</td><td>{{ r.applied_index || "-" }}</td><td class="d-none d-md-table-cell">{{ r.commit_index || "-" }}</td><td :class="{\'text-danger\': r.lag > 1000}">{{ r.error ? "-" : r.lag }}</td>' +
        '  <td class="hr-wrap d-none d-md-table-cell"><a v-if="r.api" :href="r.api + \'/ui/\'">{{ r.api }}</a><span v-if="r.error" class="hr-muted d-block">{{ r.error }}</span></td></tr></tbody></table></div>' +
        ' </div></div></div>' +
        ' <div class="col-12 col-lg-5"><div class="card"><div class="card-body">' +
        '  <h2 class="h6">Tasks by status</h2>' +
        '  <table id="overview-tasks" class="table table-sm mb-0"><tbody><tr v-for="r in taskRows" :key="r.status" :data-status="r.status"><td><a :href="\'/ui/tasks?status=\' + r.status"><hr-status :s="r.status"></hr-status></a></td><td class="text-end">{{ r.n }}</td></tr></tbody></table>' +
        ' </div></div></div>' +
        '</div></div>',
      created: function () {
        var self = this;
        HR.follow(self, 'applied', function () {
          if (HR.feed) self.counts = HR.feed.counts || {};
          HR.api('/api/cluster/replicas').then(function (r) { self.replicas = r; self.err = null; }).catch(function (e) { self.err = e; });
        }, 500);
        HR.follow(self, ['applied', 'live'], function () {
          HR.api('/api/nodes').then(function (n) { self.nodes = n; }).catch(function (e) { self.err = e; });
        }, 500);
        HR.api('/api/doctor').then(function (d) { self.doctor = d; }).catch(function (e) { self.doctorErr = e; });
      },
      methods: {
        pct: function (a, b) { return b > 0 ? Math.min(100, Math.round(100 * a / b)) : 0; },
        fmtBytes: function (n) { return n > 0 ? HR.fmt.bytes(n) : '0'; }
      }
    }
  });
})();
