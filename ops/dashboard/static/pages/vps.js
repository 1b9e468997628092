/* VPS page: the VPS tasks (GET /api/tasks?type=vps&view=summary, never
 * their SSH keys) with owner, node, state and the lines to connect; create
 * (the submit form in VPS mode), stop (kill), and a terminal into a running
 * one (pages/exec.js, no sshd needed). */
(function () {
  'use strict';
  var U = function () { return HR.taskUtil; };

  HR.page('vps', {
    path: '/vps',
    title: 'VPS',
    nav: true,
    order: 40,
    component: {
      props: ['params'],
      data: function () { return { rows: [], all: false, more: false, cluster: null, err: null, msg: '', busy: {}, copied: '', term: '' }; },
      template: `
<div>
  <div class="d-flex flex-wrap align-items-center gap-2 mb-2">
    <h1 class="h4 me-auto mb-0">VPS</h1>
    <div class="form-check form-switch mb-0"><input class="form-check-input" type="checkbox" id="vps-all" v-model="all" @change="load"><label class="form-check-label" for="vps-all">show ended</label></div>
    <a v-if="canCreate" class="btn btn-sm btn-primary" href="/ui/submit?mode=vps" id="vps-create">Create a VPS</a>
  </div>
  <hr-error :err="err"></hr-error>
  <div v-if="msg" class="alert alert-info py-2 hr-wrap">{{ msg }}</div>
  <p class="hr-muted" v-if="jump">Connect with the CLI (<code>hakuriver ssh ID</code>) or plain OpenSSH through the jump host {{ jump }} (the key in ssh-agent or a default key file).</p>
  <div class="table-responsive">
  <table class="table table-sm bg-white" id="vps-table">
    <thead><tr><th>ID</th><th class="d-none d-sm-table-cell">State</th><th class="d-none d-sm-table-cell">Owner</th><th class="d-none d-sm-table-cell">Node</th><th class="d-none d-lg-table-cell">Environment</th><th>Connect</th><th class="d-none d-md-table-cell">Created</th><th></th></tr></thead>
    <tbody>
      <tr v-for="t in shown" :key="t.task_id" :id="'vps-row-' + t.task_id">
        <td><hr-link :to="'/task/' + t.task_id">{{ t.task_id }}</hr-link>
          <div class="d-sm-none small"><hr-status :s="t.status"></hr-status> · {{ t.owner || '-' }} · {{ t.assigned_node || t.target_node || '-' }}</div></td>
        <td class="d-none d-sm-table-cell"><hr-status :s="t.status"></hr-status></td>
        <td class="d-none d-sm-table-cell">{{ t.owner || '-' }}</td>
        <td class="d-none d-sm-table-cell">{{ t.assigned_node || t.target_node || '-' }}</td>
        <td class="hr-wrap d-none d-lg-table-cell">{{ t.container_name }}</td>
        <td class="hr-copy">
          <template v-if="t.ssh_port && !final(t)">
            <div class="d-flex gap-1 align-items-start"><code class="hr-wrap">hakuriver ssh {{ t.task_id }}</code> <button class="btn btn-link btn-sm p-0" type="button" @click="copy('hakuriver ssh ' + t.task_id)" :aria-label="'copy the hakuriver ssh line of ' + t.task_id">copy</button></div>
            <div v-if="t.status === 'running'" class="d-flex gap-1 align-items-start"><code class="hr-wrap">hakuriver connect {{ t.task_id }}</code> <button class="btn btn-link btn-sm p-0" type="button" @click="copy('hakuriver connect ' + t.task_id)" :aria-label="'copy the hakuriver connect line of ' + t.task_id">copy</button></div>
            <div v-if="jump" class="d-flex gap-1 align-items-start"><code class="hr-wrap">{{ sshJ(t) }}</code> <button class="btn btn-link btn-sm p-0" type="button" @click="copy(sshJ(t))" :aria-label="'copy the ssh -J line of ' + t.task_id">copy</button></div>
          </template>
          <span v-else-if="!final(t)" class="hr-muted">starting…</span>
          <span v-else class="hr-muted">-</span>
        </td>
        <td class="d-none d-md-table-cell"><hr-time :ts="t.submitted_at"></hr-time></td>
        <td><div class="d-flex gap-1"><button v-if="t.status === 'running' && canStop(t)" class="btn btn-sm btn-outline-dark" type="button" @click="term = t.task_id" :id="'vps-term-' + t.task_id">Terminal</button>
          <button v-if="!final(t) && canStop(t)" class="btn btn-sm btn-outline-danger" type="button" :disabled="busy[t.task_id]" @click="stop(t)" :id="'vps-stop-' + t.task_id">Stop</button></div></td>
      </tr>
      <tr v-if="!shown.length"><td colspan="8" class="hr-muted">No {{ all ? '' : 'active ' }}VPS.</td></tr>
    </tbody>
  </table>
  </div>
  <hr-exec-terminal v-if="term" :id="term" :key="'term-' + term" @close="term = ''"></hr-exec-terminal>
  <div v-if="copied" class="hr-muted" role="status">copied: {{ copied }}</div>
  <div v-if="more" class="hr-muted">Only the newest 200 are listed; the <a href="/ui/tasks?type=vps">tasks page</a> pages through all.</div>
</div>`,
      computed: {
        jump: function () { return U().jumpHost(this.cluster); },
        canCreate: function () { return HR.can('user'); },
        shown: function () {
          var self = this;
          return self.rows.filter(function (t) { return self.all || !U().final(t.status); });
        }
      },
      created: function () {
        var self = this;
        HR.api('/api/cluster').then(function (c) { self.cluster = c; }).catch(function () {});
        HR.follow(self, 'applied', function () { self.load(); }, 500);
      },
      methods: {
        final: function (t) { return U().final(t.status); },
        canStop: function (t) { var me = HR.me || {}; return HR.can('operator') || (HR.can('user') && me.user === t.owner); },
        sshJ: function (t) { return 'ssh -J ' + t.task_id + '@' + this.jump + ' root@' + t.task_id; },
        copy: function (s) { var self = this; U().copy(s).then(function () { self.copied = s; }); },
        load: function () {
          var self = this;
          return U().raw('/api/tasks' + HR.query({ type: 'vps', view: 'summary', limit: 200 })).then(function (r) {
            var d = JSON.parse(r.text || 'null');
            if (r.status !== 200) throw new Error((d && d.error) || 'HTTP ' + r.status);
            self.rows = d || [];
            self.more = r.headers.get('X-Hakuriver-More') === 'true';
            self.err = null;
          }).catch(function (e) { self.err = e; });
        },
        stop: function (t) {
          var self = this;
          if (!confirm('Stop VPS ' + t.task_id + '? Its container is removed.')) return;
          self.$set(self.busy, t.task_id, true);
          U().kill(t.task_id).then(function (r) { self.msg = r && r.message; return self.load(); })
            .catch(function (e) { self.err = e; }).then(function () { self.$set(self.busy, t.task_id, false); });
        }
      }
    }
  });
})();
