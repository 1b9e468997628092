/* Doctor: this replica's checks (GET /api/doctor), failures first, with
 * its view of the cluster's members. */
(function () {
  'use strict';
  var rank = { fail: 0, warn: 1, ok: 2 };

  HR.page('doctor', {
    path: '/doctor',
    title: 'Doctor',
    nav: true,
    order: 60,
    component: {
      props: ['params'],
      data: function () { return { report: null, err: null, busy: false }; },
      computed: {
        checks: function () {
          return ((this.report && this.report.checks) || []).slice().sort(function (a, b) {
            var d = (rank[a.status] === undefined ? 3 : rank[a.status]) - (rank[b.status] === undefined ? 3 : rank[b.status]);
            return d || a.name.localeCompare(b.name);
          });
        },
        summary: function () {
          var s = { ok: 0, warn: 0, fail: 0 };
          this.checks.forEach(function (c) { s[c.status] = (s[c.status] || 0) + 1; });
          return s;
        }
      },
      template:
        '<div id="doctor">' +
        '<div class="d-flex flex-wrap align-items-center gap-2 mb-3"><h1 class="h4 mb-0 me-auto">Doctor</h1>' +
        '<button id="doctor-run" type="button" class="btn btn-sm btn-outline-primary" :disabled="busy" @click="run">{{ busy ? "Checking…" : "Check again" }}</button></div>' +
        '<hr-error :err="err"></hr-error>' +
        '<div v-if="report">' +
        '<p class="hr-muted">Replica <strong>{{ report.node }}</strong> ({{ report.version || "unknown version" }}), checked <hr-time :ts="report.time"></hr-time> in {{ Math.round(report.elapsed_ms) }} ms. ' +
        '<span id="doctor-summary"><span class="hr-s-fail">{{ summary.fail }} fail</span>, <span class="hr-s-warn">{{ summary.warn }} warn</span>, <span class="hr-s-ok">{{ summary.ok }} ok</span></span>. ' +
        'The CLI\'s <code>hakuriver doctor</code> also probes every member from each replica.</p>' +
        '<div class="table-responsive"><table id="doctor-checks" class="table table-sm bg-white align-middle"><thead><tr><th scope="col">Status</th><th scope="col">Check</th><th scope="col">Measured</th><th scope="col">Cause and fix</th></tr></thead>' +
        '<tbody><tr v-for="c in checks" :key="c.name + (c.node || \'\')" :data-status="c.status" :class="{\'table-danger\': c.status === \'fail\', \'table-warning\': c.status === \'warn\'}">' +
        '<td><hr-status :s="c.status"></hr-status></td><td class="hr-wrap">{{ c.name }}<span v-if="c.node" class="hr-muted"> ({{ c.node }})</span></td>' +
        '<td class="hr-wrap">{{ c.measured }}</td><td class="hr-wrap">{{ c.cause || "" }}</td></tr></tbody></table></div>' +
        '<div v-if="(report.peers || []).length"><h2 class="h6">Members seen in gossip</h2>' +
        '<div class="table-responsive"><table id="doctor-peers" class="table table-sm bg-white"><thead><tr><th scope="col">Name</th><th scope="col">Role</th><th scope="col">API</th><th scope="col">Gossip</th><th scope="col">Version</th></tr></thead>' +
        '<tbody><tr v-for="p in report.peers" :key="p.name + p.role"><td class="hr-wrap">{{ p.name }}</td><td>{{ p.role }}</td><td class="hr-wrap">{{ p.api || "-" }}</td><td class="hr-wrap">{{ p.gossip }}</td><td>{{ p.version || "-" }}</td></tr></tbody></table></div></div>' +
        '</div></div>',
      created: function () { this.run(); },
      methods: {
        run: function () {
          var self = this;
          self.busy = true;
          HR.api('/api/doctor').then(function (r) { self.report = r; self.err = null; })
            .catch(function (e) { self.err = e; })
            .then(function () { self.busy = false; });
        }
      }
    }
  });
})();
