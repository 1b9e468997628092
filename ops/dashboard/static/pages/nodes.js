/* Nodes: every runner with its accounting and the leader's live figures
 * (GET /api/nodes), a short history chart of CPU and memory use kept in a
 * client-side ring (seeded by GET /api/health, fed by each re-read on the
 * feed's "live" events), drain/undrain for operators; and the node page
 * /ui/node/:name with its GPUs, NUMA nodes and tasks (GET /api/tasks?node=). */
(function () {
  'use strict';

  var RING = 120; // samples kept per series (a few minutes)

  /** history keeps, per node and for the cluster, {t, cpu, mem} samples. */
  var history = {
    series: {},
    seeded: false,
    push: function (key, t, cpu, mem) {
      if (cpu === null || cpu === undefined) return;
      var s = (this.series[key] = this.series[key] || []);
      var ms = new Date(t).getTime();
      if (isNaN(ms) || (s.length && s[s.length - 1].t >= ms)) return;
      s.push({ t: ms, cpu: cpu, mem: mem });
      if (s.length > RING) s.splice(0, s.length - RING);
    },
    /** fromNodes records one GET /api/nodes answer. */
    fromNodes: function (nodes) {
      var now = Date.now(), cpu = 0, mem = 0, n = 0;
      nodes.forEach(function (v) {
        if (v.cpu_percent === null || v.cpu_percent === undefined) return;
        history.push(v.hostname, v.last_heartbeat || now, v.cpu_percent, v.memory_percent);
        cpu += v.cpu_percent; mem += v.memory_percent || 0; n++;
      });
      if (n) history.push('', now, cpu / n, mem / n);
    },
    /** seed loads the leader's last minute once (GET /api/health). */
    seed: function () {
      if (history.seeded) return Promise.resolve();
      history.seeded = true;
      return HR.api('/api/health').then(function (h) {
        (h.nodes || []).forEach(function (sample, i) {
          (sample || []).forEach(function (v) { history.push(v.hostname, v.last_heartbeat, v.cpu_percent, v.memory_percent); });
          var a = (h.aggregate || [])[i];
          if (a && a.onlineNodes) history.push('', a.lastUpdated, a.avgCpuPercent, a.avgMemPercent);
        });
      }).catch(function () { history.seeded = false; });
    }
  };
  HR.nodeHistory = history;

  /** <hr-history-chart :series-key="name" :tick="n"> draws CPU and memory %. */
  Vue.component('hr-history-chart', {
    props: ['seriesKey', 'tick', 'label'],
    template: '<div class="hr-chart"><canvas ref="c" role="img" :aria-label="(label || \'CPU and memory\') + \' history\'"></canvas></div>',
    mounted: function () {
      if (typeof Chart === 'undefined') return;
      this.chart = new Chart(this.$refs.c.getContext('2d'), {
        type: 'line',
        data: { labels: [], datasets: [
          { label: 'CPU %', data: [], borderColor: '#0d6efd', backgroundColor: 'rgba(13,110,253,.1)', pointRadius: 0, borderWidth: 1.5, fill: true, tension: 0.2 },
          { label: 'Memory %', data: [], borderColor: '#20c997', pointRadius: 0, borderWidth: 1.5, tension: 0.2 }
        ] },
        options: {
          animation: false, responsive: true, maintainAspectRatio: false,
          scales: { y: { min: 0, max: 100, ticks: { maxTicksLimit: 3 } }, x: { ticks: { maxTicksLimit: 4, maxRotation: 0 } } },
          plugins: { legend: { display: true, labels: { boxWidth: 10 } } }
        }
      });
      this.draw();
    },
    watch: { tick: function () { this.draw(); } },
    beforeDestroy: function () { if (this.chart) this.chart.destroy(); },
    methods: {
      draw: function () {
        if (!this.chart) return;
        var s = history.series[this.seriesKey || ''] || [];
        var d = this.chart.data;
        d.labels = s.map(function (p) { var t = new Date(p.t); return t.getHours() + ':' + ('0' + t.getMinutes()).slice(-2) + ':' + ('0' + t.getSeconds()).slice(-2); });
        d.datasets[0].data = s.map(function (p) { return Math.round(p.cpu * 10) / 10; });
        d.datasets[1].data = s.map(function (p) { return p.mem === null || p.mem === undefined ? null : Math.round(p.mem * 10) / 10; });
        this.chart.update('none');
      }
    }
  });

  /** drainMixin: drain/undrain a node (operator), then re-read. Draining
   * only stops new placements and is undone by one click: no confirmation. */
  var drainMixin = {
    data: function () { return { busy: {}, actionErr: null, message: '' }; },
    computed: { canDrain: function () { return HR.can('operator'); } },
    methods: {
      setDrain: function (name, drain, reason) {
        var self = this;
        self.$set(self.busy, name, true);
        self.actionErr = null;
        var opts = { method: 'POST' };
        if (drain && reason) opts.body = { reason: reason };
        HR.api('/api/nodes/' + encodeURIComponent(name) + '/' + (drain ? 'drain' : 'undrain'), opts)
          .then(function (r) { self.message = r && r.message; self.reload(); })
          .catch(function (e) { self.actionErr = e; })
          .then(function () { self.$set(self.busy, name, false); });
      }
    }
  };

  var gpuSummary = function (n) {
    var g = n.gpu_info || [];
    if (!g.length) return '-';
    return (n.gpus_in_use || []).length + ' / ' + g.length;
  };

  HR.page('nodes', {
    path: '/nodes',
    title: 'Nodes',
    nav: true,
    order: 20,
    component: {
      props: ['params'],
      mixins: [drainMixin],
      data: function () { return { nodes: null, err: null, tick: 0, filter: '' }; },
      computed: {
        shown: function () {
          var f = this.filter.trim().toLowerCase();
          return (this.nodes || []).filter(function (n) {
            return !f || n.hostname.toLowerCase().indexOf(f) >= 0 || HR.nodeState(n) === f;
          });
        }
      },
      template:
        '<div id="nodes">' +
        '<div class="d-flex flex-wrap align-items-center gap-2 mb-3"><h1 class="h4 mb-0 me-auto">Nodes</h1>' +
        '<label class="visually-hidden" for="nodes-filter">Filter nodes</label>' +
        '<input id="nodes-filter" v-model="filter" class="form-control form-control-sm" style="max-width:16rem" placeholder="filter by name or state"></div>' +
        '<hr-error :err="err"></hr-error><hr-error :err="actionErr"></hr-error>' +
        '<div v-if="message" class="alert alert-success py-2" role="status">{{ message }}</div>' +
        '<div class="card mb-3"><div class="card-body"><h2 class="h6">Cluster CPU and memory use (average of online runners)</h2>' +
        '<hr-history-chart series-key="" :tick="tick" label="cluster"></hr-history-chart></div></div>' +
        '<div v-if="nodes && !nodes.length" class="alert alert-info">No runner has registered yet.</div>' +
        '<div class="table-responsive" v-if="nodes && nodes.length"><table id="nodes-table" class="table table-sm table-hover align-middle bg-white">' +
        '<thead><tr><th scope="col">Node</th><th scope="col">State</th><th scope="col">Cores</th><th scope="col">Memory reserved</th><th scope="col">CPU</th><th scope="col">Memory used</th><th scope="col">GPUs</th><th scope="col">NUMA</th><th scope="col">Temp</th><th scope="col">Heartbeat</th><th scope="col" v-if="canDrain"><span class="visually-hidden">Actions</span></th></tr></thead>' +
        '<tbody><tr v-for="n in shown" :key="n.hostname" :data-node="n.hostname">' +
        '<td class="hr-wrap"><hr-link :to="\'/node/\' + encodeURIComponent(n.hostname)">{{ n.hostname }}</hr-link></td>' +
        '<td class="node-state"><hr-status :s="state(n)"></hr-status><div v-if="n.drained && n.drain_reason" class="hr-muted hr-wrap node-drain-reason">{{ n.drain_reason }}</div>' +
        '<div v-if="n.drained && n.drained_by" class="hr-muted hr-wrap node-drained-by">by {{ n.drained_by }} <hr-time :ts="n.drained_at"></hr-time></div></td>' +
        '<td>{{ n.cores_in_use }} / {{ n.total_cores }}</td>' +
        '<td>{{ bytes0(n.memory_in_use_bytes) }} / {{ bytes(n.memory_total_bytes) }}</td>' +
        '<td>{{ pct(n.cpu_percent) }}</td><td>{{ pct(n.memory_percent) }}</td>' +
        '<td>{{ gpus(n) }}</td><td>{{ numa(n) }}</td>' +
        '<td>{{ n.current_max_temp != null ? n.current_max_temp.toFixed(0) + "°C" : "-" }}</td>' +
        '<td><hr-time :ts="n.last_heartbeat"></hr-time></td>' +
        '<td v-if="canDrain" class="text-end text-nowrap">' +
        '<button v-if="!n.drained" type="button" class="btn btn-sm btn-outline-warning node-drain" :disabled="busy[n.hostname]" @click="setDrain(n.hostname, true)">Drain</button>' +
        '<button v-else type="button" class="btn btn-sm btn-outline-success node-undrain" :disabled="busy[n.hostname]" @click="setDrain(n.hostname, false)">Undrain</button>' +
        '</td></tr></tbody></table></div>' +
        '</div>',
      created: function () {
        var self = this;
        history.seed().then(function () { self.tick++; });
        HR.follow(self, ['applied', 'live'], function () { self.reload(); }, 300);
      },
      methods: {
        reload: function () {
          var self = this;
          return HR.api('/api/nodes').then(function (n) {
            self.nodes = n;
            self.err = null;
            history.fromNodes(n);
            self.tick++;
          }).catch(function (e) { self.err = e; });
        },
        state: HR.nodeState,
        bytes: HR.fmt.bytes,
        bytes0: function (n) { return n > 0 ? HR.fmt.bytes(n) : '0'; },
        pct: HR.fmt.pct,
        gpus: gpuSummary,
        numa: function (n) { var k = Object.keys(n.numa_topology || {}); return k.length ? k.length : '-'; }
      }
    }
  });

  HR.page('node', {
    path: '/node/:name',
    title: 'Node',
    component: {
      props: ['params'],
      mixins: [drainMixin],
      data: function () {
        return { node: null, tasks: null, more: false, nextAfter: '', status: '', err: null, tick: 0, notFound: false, reason: '',
          statuses: ['pending', 'assigning', 'running', 'paused', 'completed', 'failed', 'killed', 'killed_oom', 'lost'] };
      },
      computed: {
        name: function () { return this.params.name; },
        numaRows: function () {
          var t = (this.node && this.node.numa_topology) || {};
          return Object.keys(t).sort(function (a, b) { return a - b; }).map(function (k) { return { id: k, cores: t[k].cores || [], mem: t[k].memory_bytes }; });
        }
      },
      template:
        '<div id="node-page">' +
        '<nav aria-label="breadcrumb"><ol class="breadcrumb mb-2"><li class="breadcrumb-item"><hr-link to="/nodes">Nodes</hr-link></li><li class="breadcrumb-item active hr-wrap" aria-current="page">{{ name }}</li></ol></nav>' +
        '<hr-error :err="err"></hr-error><hr-error :err="actionErr"></hr-error>' +
        '<div v-if="message" class="alert alert-success py-2" role="status">{{ message }}</div>' +
        '<div v-if="notFound" class="alert alert-warning">No runner named <code>{{ name }}</code> is registered.</div>' +
        '<div v-if="node">' +
        '<div class="d-flex flex-wrap align-items-center gap-2 mb-3"><h1 class="h4 mb-0 hr-wrap">{{ node.hostname }}</h1>' +
        '<span id="node-state" class="fs-5"><hr-status :s="state(node)"></hr-status></span>' +
        '<span v-if="node.drained && node.drain_reason" id="node-drain-reason" class="hr-muted hr-wrap">({{ node.drain_reason }})</span>' +
        '<span v-if="node.drained && node.drained_by" id="node-drained-by" class="hr-muted hr-wrap">drained by {{ node.drained_by }} <hr-time :ts="node.drained_at"></hr-time></span>' +
        '<form class="ms-auto d-flex gap-2" v-if="canDrain" @submit.prevent="node.drained ? setDrain(node.hostname, false) : setDrain(node.hostname, true, reason)">' +
        '<label v-if="!node.drained" for="node-drain-reason-input" class="visually-hidden">Reason</label>' +
        '<input v-if="!node.drained" id="node-drain-reason-input" v-model="reason" maxlength="200" class="form-control" placeholder="reason (optional)">' +
        '<button v-if="!node.drained" id="node-drain" type="submit" class="btn btn-outline-warning" :disabled="busy[node.hostname]">Drain</button>' +
        '<button v-else id="node-undrain" type="submit" class="btn btn-outline-success" :disabled="busy[node.hostname]">Undrain</button>' +
        '</form></div>' +
        '<div class="row g-3 mb-3">' +
        '<div class="col-12 col-lg-5"><div class="card h-100"><div class="card-body"><dl class="row mb-0 small">' +
        '<dt class="col-5">Runner API</dt><dd class="col-7 hr-wrap">{{ node.url }}</dd>' +
        '<dt class="col-5">Cores</dt><dd class="col-7" id="node-cores">{{ node.cores_in_use }} in use of {{ node.total_cores }}</dd>' +
        '<dt class="col-5">Memory reserved</dt><dd class="col-7">{{ bytes0(node.memory_in_use_bytes) }} of {{ bytes(node.memory_total_bytes) }}</dd>' +
        '<dt class="col-5">CPU</dt><dd class="col-7">{{ pct(node.cpu_percent) }}</dd>' +
        '<dt class="col-5">Memory used</dt><dd class="col-7">{{ pct(node.memory_percent) }} <span v-if="node.memory_used_bytes">({{ bytes(node.memory_used_bytes) }})</span></dd>' +
        '<dt class="col-5">Temperature</dt><dd class="col-7">{{ node.current_avg_temp != null ? node.current_avg_temp.toFixed(0) + "°C avg, " + node.current_max_temp.toFixed(0) + "°C max" : "-" }}</dd>' +
        '<dt class="col-5">Heartbeat</dt><dd class="col-7"><hr-time :ts="node.last_heartbeat"></hr-time></dd>' +
        '<dt class="col-5">Registered</dt><dd class="col-7"><hr-time :ts="node.registered_at"></hr-time></dd>' +
        '<dt class="col-5">State since</dt><dd class="col-7"><hr-time :ts="node.status_changed_at"></hr-time></dd>' +
        '<dt class="col-5">cgroups limits</dt><dd class="col-7">{{ node.cgroups_limited ? "enforced" : "not enforced" }}</dd>' +
        '</dl></div></div></div>' +
        '<div class="col-12 col-lg-7"><div class="card h-100"><div class="card-body"><h2 class="h6">CPU and memory use</h2>' +
        '<hr-history-chart :series-key="node.hostname" :tick="tick" :label="node.hostname"></hr-history-chart></div></div></div>' +
        '</div>' +
        '<div class="row g-3 mb-3">' +
        '<div class="col-12 col-lg-5" v-if="numaRows.length"><div class="card h-100"><div class="card-body"><h2 class="h6">NUMA nodes</h2>' +
        '<table class="table table-sm mb-0"><thead><tr><th scope="col">Node</th><th scope="col">Cores</th><th scope="col">Memory</th></tr></thead><tbody>' +
        '<tr v-for="r in numaRows" :key="r.id"><td>{{ r.id }}</td><td class="hr-wrap">{{ r.cores.join(",") }}</td><td>{{ bytes(r.mem) }}</td></tr></tbody></table></div></div></div>' +
        '<div class="col-12" :class="{\'col-lg-7\': numaRows.length}" v-if="(node.gpu_info || []).length"><div class="card h-100"><div class="card-body"><h2 class="h6">GPUs</h2>' +
        '<div class="table-responsive"><table id="node-gpus" class="table table-sm mb-0"><thead><tr><th scope="col">ID</th><th scope="col">Name</th><th scope="col">Util</th><th scope="col">Memory</th><th scope="col">Temp</th><th scope="col">Power</th><th scope="col">Held</th></tr></thead><tbody>' +
        '<tr v-for="g in node.gpu_info" :key="g.gpu_id"><td>{{ g.gpu_id }}</td><td class="hr-wrap">{{ g.name }}</td><td>{{ g.gpu_utilization >= 0 ? g.gpu_utilization + "%" : "-" }}</td>' +
        '<td>{{ g.memory_total_mib > 0 ? bytes(g.memory_used_mib * 1048576) + " / " + bytes(g.memory_total_mib * 1048576) : "-" }}</td><td>{{ g.temperature >= 0 ? g.temperature + "°C" : "-" }}</td>' +
        '<td>{{ g.power_usage_mw > 0 ? (g.power_usage_mw / 1000).toFixed(0) + " W" : "-" }}</td><td>{{ (node.gpus_in_use || []).indexOf(g.gpu_id) >= 0 ? "yes" : "" }}</td></tr></tbody></table></div></div></div></div>' +
        '</div>' +
        '<div class="card"><div class="card-body">' +
        '<div class="d-flex flex-wrap align-items-center gap-2 mb-2"><h2 class="h6 mb-0 me-auto">Tasks on this node</h2>' +
        '<label for="node-task-status" class="visually-hidden">Status</label>' +
        '<select id="node-task-status" v-model="status" class="form-select form-select-sm" style="max-width:12rem" @change="loadTasks()"><option value="">any status</option><option v-for="s in statuses" :key="s" :value="s">{{ s }}</option></select></div>' +
        '<div v-if="tasks && !tasks.length" class="hr-muted" id="node-no-tasks">No task.</div>' +
        '<div class="table-responsive" v-if="tasks && tasks.length"><table id="node-tasks" class="table table-sm mb-0"><thead><tr><th scope="col">ID</th><th scope="col">Status</th><th scope="col">Command</th><th scope="col">Owner</th><th scope="col">Resources</th><th scope="col">Submitted</th></tr></thead><tbody>' +
        '<tr v-for="t in tasks" :key="t.task_id" :data-task="t.task_id"><td><hr-link :to="\'/task/\' + t.task_id">{{ t.task_id }}</hr-link></td><td><hr-status :s="t.status"></hr-status><span v-if="t.exit_code != null" class="hr-muted"> ({{ t.exit_code }})</span></td>' +
        '<td class="hr-cmd">{{ t.task_type === "vps" ? "VPS" : cmd(t.command, t.arguments) }}</td><td>{{ t.owner || "-" }}</td>' +
        '<td class="text-nowrap">{{ t.required_cores }}c {{ bytes(t.required_memory_bytes) }}<span v-if="(t.required_gpus || []).length"> GPU {{ t.required_gpus.join(",") }}</span></td><td><hr-time :ts="t.submitted_at"></hr-time></td></tr></tbody></table></div>' +
        '<button v-if="more" type="button" class="btn btn-sm btn-outline-secondary mt-2" @click="loadTasks(nextAfter)">Older tasks</button>' +
        '</div></div>' +
        '</div></div>',
      created: function () {
        var self = this;
        history.seed().then(function () { self.tick++; });
        HR.follow(self, ['applied', 'live'], function () { self.reload(); }, 300);
        HR.follow(self, 'applied', function () { if (!self.nextAfterLoaded) self.loadTasks(); }, 500);
      },
      methods: {
        reload: function () {
          var self = this;
          return HR.api('/api/nodes').then(function (ns) {
            history.fromNodes(ns);
            self.tick++;
            var n = ns.filter(function (v) { return v.hostname === self.name; })[0];
            self.node = n || null;
            self.notFound = !n;
            self.err = null;
          }).catch(function (e) { self.err = e; });
        },
        loadTasks: function (after) {
          var self = this;
          self.nextAfterLoaded = !!after;
          return HR.api('/api/tasks' + HR.query({ node: self.name, status: self.status, limit: 50, after: after }), { full: true }).then(function (r) {
            self.tasks = after ? (self.tasks || []).concat(r.data) : r.data;
            self.more = r.headers.get('X-Hakuriver-More') === 'true';
            self.nextAfter = r.headers.get('X-Hakuriver-Next-After') || '';
          }).catch(function (e) { self.err = e; });
        },
        state: HR.nodeState,
        bytes: HR.fmt.bytes,
        bytes0: function (n) { return n > 0 ? HR.fmt.bytes(n) : '0'; },
        pct: HR.fmt.pct,
        cmd: HR.fmt.cmd
      }
    }
  });
})();
