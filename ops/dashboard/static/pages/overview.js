/* Overview page: cluster health at a glance. */
HR.page('overview', {
  path: '/',
  title: 'Overview',
  nav: true,
  order: 10,
  component: {
    props: ['params'],
    data: function () { return { cluster: null, err: null }; },
    template:
      '<div><h1 class="h4">Overview</h1><hr-error :err="err"></hr-error>' +
      '<div v-if="cluster" id="overview-cluster">leader {{ cluster.leader_id }}, applied index {{ cluster.applied_index }}</div></div>',
    created: function () {
      var self = this;
      HR.follow(self, 'applied', function () {
        HR.api('/api/cluster').then(function (c) { self.cluster = c; self.err = null; }).catch(function (e) { self.err = e; });
      });
    }
  }
});
