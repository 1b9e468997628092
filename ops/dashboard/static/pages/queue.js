/* Queue: pending tasks in scheduling order with the scheduler's reason for
 * each (GET /api/queue?limit=), re-read on the feed's "applied" events. */
(function () {
  'use strict';
  var PAGE = 200;

  HR.page('queue', {
    path: '/queue',
    title: 'Queue',
    nav: true,
    order: 40,
    component: {
      props: ['params'],
      data: function () { return { entries: null, length: 0, more: false, limit: PAGE, err: null }; },
      template:
        '<div id="queue">' +
        '<div class="d-flex flex-wrap align-items-baseline gap-2 mb-3"><h1 class="h4 mb-0">Queue</h1>' +
        '<span id="queue-length" class="hr-muted" v-if="entries">{{ length }} pending</span></div>' +
        '<hr-error :err="err"></hr-error>' +
        '<div v-if="entries && !entries.length" id="queue-empty" class="alert alert-info">Nothing is waiting: every task is placed or finished.</div>' +
        '<div class="table-responsive" v-if="entries && entries.length"><table id="queue-table" class="table table-sm bg-white align-middle">' +
        '<thead><tr><th scope="col">#</th><th scope="col">Task</th><th scope="col">Priority</th><th scope="col">Command</th><th scope="col">Target</th><th scope="col">Why it waits</th><th scope="col">Submitted</th></tr></thead>' +
        '<tbody><tr v-for="(e, i) in entries" :key="e.task_id" :data-task="e.task_id">' +
        '<td class="hr-muted">{{ i + 1 }}</td><td><hr-link :to="\'/task/\' + e.task_id">{{ e.task_id }}</hr-link></td><td>{{ e.priority }}</td>' +
        '<td class="hr-cmd">{{ e.command }}</td><td class="hr-wrap">{{ e.target_node || "any" }}</td>' +
        '<td class="hr-wrap queue-reason" :class="{\'text-danger\': /^will fail/.test(e.reason)}">{{ e.reason || "waiting for the next scheduling pass" }}</td>' +
        '<td><hr-time :ts="e.submitted_at"></hr-time></td></tr></tbody></table></div>' +
        '<button v-if="more" type="button" class="btn btn-sm btn-outline-secondary" @click="limit += 200; reload()">Show more</button>' +
        '</div>',
      created: function () {
        var self = this;
        HR.follow(self, 'applied', function () { self.reload(); }, 500);
      },
      methods: {
        reload: function () {
          var self = this;
          return HR.api('/api/queue' + HR.query({ limit: self.limit }), { full: true }).then(function (r) {
            self.entries = r.data || [];
            self.length = parseInt(r.headers.get('X-Hakuriver-Queue-Length') || String(self.entries.length), 10);
            self.more = r.headers.get('X-Hakuriver-More') === 'true';
            self.err = null;
          }).catch(function (e) { self.err = e; });
        }
      }
    }
  });
})();
