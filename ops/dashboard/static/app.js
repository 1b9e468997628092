/* HakuRiver HA dashboard application: the Vue root, history routing under
 * /ui/, the top navigation, the login page and the change feed
 * (GET /api/events, Server-Sent Events) that drives HR.events. */
(function () {
  'use strict';

  var Login = {
    props: ['reason'],
    data: function () { return { token: '', err: null, busy: false }; },
    template:
      '<div class="row justify-content-center mt-4"><div class="col-12 col-md-8 col-lg-6">' +
      '<div class="card"><div class="card-body">' +
      '<h1 class="h4 card-title">Sign in</h1>' +
      '<p class="hr-muted">Paste an API token (<code>hakuriver token create</code>, or the ' +
      '<code>HAKURIVER_TOKEN</code> printed by <code>hakuriver dev</code>). This replica keeps it in an HttpOnly session cookie.</p>' +
      '<form id="login-form" @submit.prevent="submit">' +
      '<label for="login-token" class="form-label">API token</label>' +
      '<input id="login-token" ref="token" v-model="token" type="password" class="form-control mb-3" autocomplete="off" placeholder="hkr_..." required>' +
      '<hr-error :err="err"></hr-error>' +
      '<button id="login-submit" class="btn btn-primary" type="submit" :disabled="busy || !token">Sign in</button>' +
      '</form></div></div></div></div>',
    mounted: function () { this.$refs.token.focus(); },
    methods: {
      submit: function () {
        var self = this;
        self.busy = true;
        self.err = null;
        HR.api('/api/auth/login', { method: 'POST', body: { token: self.token.trim() } })
          .then(function () { self.token = ''; self.$emit('signed-in'); })
          .catch(function (e) { self.err = e instanceof HR.AuthError ? new Error('This token is not valid (unknown, revoked or expired).') : e; })
          .then(function () { self.busy = false; });
      }
    }
  };

  var NotFound = {
    props: ['params'],
    template: '<div><h1 class="h4">Not found</h1><p>No page at <code class="hr-wrap">{{ path }}</code>. <hr-link to="/">Overview</hr-link></p></div>',
    computed: { path: function () { return location.pathname; } }
  };

  /** Feed relays the change feed (/api/events) to the pages: through the
   * SharedWorker of feedworker.js, one stream for every tab of this
   * browser (a browser holds at most six connections per host, and a tab
   * without its stream never loads), or with an EventSource of its own where
   * there is no SharedWorker. */
  function Feed(root) {
    this.root = root;
    this.es = null;
    this.port = null;
    this.retry = null;
  }
  Feed.prototype.event = function (type, data) {
    var d = JSON.parse(data);
    if (type === 'applied') {
      this.root.feed = d;
      HR.feed = d;
    } else {
      HR.live = d;
    }
    HR.events.emit(type, d);
  };
  /** refused: the stream was refused (401, 503): ask again later; the
   * check tells whether the session ended. */
  Feed.prototype.refused = function () {
    var self = this;
    clearTimeout(self.retry);
    self.retry = setTimeout(function () { self.root.whoami().then(function (ok) { if (ok) self.open(); }); }, 5000);
  };
  Feed.prototype.worker = function () {
    var self = this;
    if (self.port) return self.port;
    var link = document.getElementById('hr-feed-worker');
    if (typeof SharedWorker === 'undefined' || !link) return null;
    try {
      self.port = new SharedWorker(link.getAttribute('href'), { name: 'hakuriver-feed' }).port;
    } catch (e) {
      return null;
    }
    self.port.onmessage = function (m) {
      var d = m.data || {};
      if (d.type === 'open') self.root.live = true;
      else if (d.type === 'applied' || d.type === 'live') self.event(d.type, d.data);
      else if (d.type === 'error') {
        self.root.live = false;
        if (d.closed) self.refused();
      }
    };
    window.addEventListener('pagehide', function () { self.port.postMessage('close'); });
    window.addEventListener('pageshow', function (ev) { if (ev.persisted && HR.me) self.port.postMessage('open'); });
    return self.port;
  };
  Feed.prototype.open = function () {
    var self = this;
    self.close();
    var port = self.worker();
    if (port) {
      port.postMessage('open');
      return;
    }
    if (typeof EventSource === 'undefined') return;
    var es = new EventSource('/api/events');
    self.es = es;
    es.addEventListener('open', function () { self.root.live = true; });
    ['applied', 'live'].forEach(function (t) {
      es.addEventListener(t, function (ev) { self.event(t, ev.data); });
    });
    es.addEventListener('error', function () {
      self.root.live = false;
      if (es.readyState === EventSource.CLOSED) {
        self.es = null;
        self.refused();
      }
    });
  };
  Feed.prototype.close = function () {
    clearTimeout(this.retry);
    if (this.port) this.port.postMessage('close');
    if (this.es) this.es.close();
    this.es = null;
    this.root.live = false;
  };

  var app = new Vue({
    el: '#app',
    data: {
      me: null,          // whoami answer, null until known
      needLogin: false,
      path: location.pathname + location.search,
      live: false,
      feed: null,
      navOpen: false,
      err: null
    },
    computed: {
      nav: function () {
        return HR.pages.filter(function (p) { return p.nav; }).sort(function (a, b) { return a.order - b.order; });
      },
      match: function () { return HR.route(this.path); },
      current: function () { return this.match ? this.match.page.component : NotFound; },
      params: function () { return this.match ? this.match.params : {}; }
    },
    template:
      '<div>' +
      '<nav class="navbar navbar-expand-md navbar-dark bg-dark hr-nav" aria-label="Main">' +
      '<div class="container-fluid">' +
      '<a class="navbar-brand" href="/ui/">HakuRiver HA</a>' +
      '<button class="navbar-toggler" type="button" aria-controls="hr-navlinks" :aria-expanded="navOpen ? \'true\' : \'false\'" aria-label="Toggle navigation" @click="navOpen = !navOpen"><span class="navbar-toggler-icon"></span></button>' +
      '<div id="hr-navlinks" class="collapse navbar-collapse" :class="{show: navOpen}">' +
      '<ul class="navbar-nav me-auto" v-if="me">' +
      '<li class="nav-item" v-for="p in nav" :key="p.name"><a class="nav-link" :class="{active: isActive(p)}" :aria-current="isActive(p) ? \'page\' : null" :href="\'/ui\' + p.path" :id="\'nav-\' + p.name">{{ p.title }}</a></li>' +
      '</ul>' +
      '<div class="d-flex align-items-center gap-2 text-light ms-auto" v-if="me">' +
      '<span :title="live ? \'live updates on (applied index \' + (feed ? feed.applied_index : \'?\') + \')\' : \'live updates off\'"><span class="hr-live-dot" :class="{on: live}"></span> <small>{{ feed && feed.leader ? \'leader \' + feed.leader : \'\' }}</small></span>' +
      '<span id="whoami" class="badge bg-secondary" :title="me.token_id ? \'token \' + me.token_id : \'\'">{{ me.anonymous ? \'anonymous\' : me.user + \' (\' + me.role + \')\' }}</span>' +
      '<button v-if="!me.anonymous" id="logout" class="btn btn-sm btn-outline-light" type="button" @click="logout">Sign out</button>' +
      '</div></div></div></nav>' +
      '<main id="main" class="container-fluid py-3 px-3 px-md-4" tabindex="-1">' +
      '<hr-error :err="err"></hr-error>' +
      '<login v-if="needLogin" @signed-in="signedIn"></login>' +
      '<component v-else-if="me" :is="current" :params="params" :key="path"></component>' +
      '</main></div>',
    components: { login: Login },
    created: function () {
      var self = this;
      self.feedConn = new Feed(self);
      HR.events.on('unauthorized', function () { self.signedOut(); });
      HR.events.on('navigate', function (p) { self.setPath(p); });
      window.addEventListener('popstate', function () { self.setPath(location.pathname + location.search); });
      document.addEventListener('click', function (ev) {
        if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
        var a = ev.target.closest ? ev.target.closest('a[href]') : null;
        if (!a || a.target || a.hasAttribute('download')) return;
        var href = a.getAttribute('href');
        if (href.indexOf('/ui/') !== 0 && href !== '/ui') return;
        if (/\.[a-z0-9]+$/i.test(href.split('?')[0])) return; // a file, not a page
        ev.preventDefault();
        self.navOpen = false;
        HR.go(href);
      });
      self.whoami().then(function (ok) { if (ok) self.feedConn.open(); });
    },
    watch: {
      match: function () { this.setTitle(); }
    },
    methods: {
      isActive: function (p) { return this.match && this.match.page === p; },
      setTitle: function () {
        document.title = (this.match ? this.match.page.title + ' · ' : '') + 'HakuRiver HA';
      },
      setPath: function (p) {
        this.path = p;
        this.err = null;
        window.scrollTo(0, 0);
        var m = document.getElementById('main');
        if (m) m.focus({ preventScroll: true });
      },
      /** whoami resolves to true when signed in (or the API is open). */
      whoami: function () {
        var self = this;
        return HR.api('/api/auth/whoami').then(function (me) {
          HR.me = me;
          self.me = me;
          self.needLogin = false;
          self.setTitle();
          return true;
        }).catch(function (e) {
          if (!(e instanceof HR.AuthError)) self.err = e;
          return false;
        });
      },
      signedIn: function () {
        var self = this;
        self.whoami().then(function (ok) { if (ok) self.feedConn.open(); });
      },
      signedOut: function () {
        HR.me = null;
        this.me = null;
        this.needLogin = true;
        this.feedConn.close();
        document.title = 'Sign in · HakuRiver HA';
      },
      logout: function () {
        var self = this;
        HR.api('/api/auth/logout', { method: 'POST' }).catch(function () {}).then(function () { self.signedOut(); });
      }
    }
  });
  HR.app = app;
})();
