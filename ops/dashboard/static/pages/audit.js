/* Audit: the record of what people did (GET /api/audit), oldest first in
 * the chosen window, paged with next_after. */
(function () {
  'use strict';

  HR.page('audit', {
    path: '/audit',
    title: 'Audit',
    nav: true,
    order: 70,
    component: {
      props: ['params'],
      data: function () { return { records: null, nextAfter: '', user: '', since: '24h', err: null, busy: false }; },
      template:
        '<div id="audit">' +
        '<div class="d-flex flex-wrap align-items-center gap-2 mb-3"><h1 class="h4 mb-0 me-auto">Audit</h1>' +
        '<form class="d-flex flex-wrap gap-2" @submit.prevent="load()">' +
        '<label class="visually-hidden" for="audit-user">User</label><input id="audit-user" v-model="user" class="form-control form-control-sm" style="max-width:12rem" placeholder="any user">' +
        '<label class="visually-hidden" for="audit-since">Since</label><select id="audit-since" v-model="since" class="form-select form-select-sm" style="max-width:10rem" @change="load()">' +
        '<option value="1h">last hour</option><option value="24h">last day</option><option value="168h">last week</option><option value="">everything kept</option></select>' +
        '<button type="submit" class="btn btn-sm btn-outline-primary">Show</button></form></div>' +
        '<hr-error :err="err"></hr-error>' +
        '<div v-if="records && !records.length" id="audit-empty" class="alert alert-info">No record in this window.</div>' +
        '<div class="table-responsive" v-if="records && records.length"><table id="audit-table" class="table table-sm bg-white align-middle">' +
        '<thead><tr><th scope="col">#</th><th scope="col">When</th><th scope="col">User</th><th scope="col">Role</th><th scope="col">Action</th><th scope="col">Target</th><th scope="col">Via</th></tr></thead>' +
        '<tbody><tr v-for="r in records" :key="r.seq" :data-seq="r.seq"><td class="hr-muted">{{ r.seq }}</td><td><hr-time :ts="r.at"></hr-time></td><td>{{ r.user }}</td><td>{{ r.role || "-" }}</td>' +
        '<td class="hr-wrap">{{ r.action }}</td><td class="hr-wrap">{{ r.target || "-" }}</td><td class="hr-wrap">{{ r.via || "-" }}</td></tr></tbody></table></div>' +
        '<button v-if="nextAfter" id="audit-next" type="button" class="btn btn-sm btn-outline-secondary" :disabled="busy" @click="load(nextAfter)">Newer records</button>' +
        '</div>',
      created: function () { this.load(); },
      methods: {
        load: function (after) {
          var self = this;
          self.busy = true;
          HR.api('/api/audit' + HR.query({ user: self.user.trim(), since: self.since, after: after, limit: 100 })).then(function (p) {
            self.records = after ? (self.records || []).concat(p.records || []) : (p.records || []);
            self.nextAfter = p.next_after || '';
            self.err = null;
          }).catch(function (e) { self.err = e; }).then(function () { self.busy = false; });
        }
      }
    }
  });
})();
