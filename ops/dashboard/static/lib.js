/* HakuRiver HA dashboard library: the global HR object shared by app.js and
 * every page (see ops/dashboard/README in DASH contract):
 *   HR.api(path, {method, body})  -> Promise of parsed JSON
 *   HR.fmt.*                       human formats matching the CLI
 *   HR.page(name, {...})           registers a page
 *   HR.events                      event bus fed by the change feed
 */
(function () {
  'use strict';
  var HR = (window.HR = {});

  /** AuthError is thrown by HR.api on 401: the app shows the login page. */
  function AuthError(message) {
    this.name = 'AuthError';
    this.message = message || 'not signed in';
    this.status = 401;
  }
  AuthError.prototype = Object.create(Error.prototype);
  AuthError.prototype.constructor = AuthError;
  HR.AuthError = AuthError;

  function cookie(name) {
    var parts = document.cookie ? document.cookie.split('; ') : [];
    for (var i = 0; i < parts.length; i++) {
      var eq = parts[i].indexOf('=');
      if (parts[i].slice(0, eq) === name) return decodeURIComponent(parts[i].slice(eq + 1));
    }
    return '';
  }
  HR.cookie = cookie;

  /* ---------------------------------------------------------------- events */
  var handlers = {};
  HR.events = {
    /** on subscribes fn to name; returns the function that unsubscribes. */
    on: function (name, fn) {
      (handlers[name] = handlers[name] || []).push(fn);
      return function () { HR.events.off(name, fn); };
    },
    off: function (name, fn) {
      var l = handlers[name] || [];
      var i = l.indexOf(fn);
      if (i >= 0) l.splice(i, 1);
    },
    emit: function (name, data) {
      (handlers[name] || []).slice().forEach(function (fn) {
        try { fn(data); } catch (e) { console.error('HR.events ' + name + ':', e); }
      });
    }
  };

  /** debounce returns fn delayed until wait ms passed without a call. */
  HR.debounce = function (fn, wait) {
    var t = null;
    var d = function () {
      var args = arguments, self = this;
      clearTimeout(t);
      t = setTimeout(function () { t = null; fn.apply(self, args); }, wait);
    };
    d.cancel = function () { clearTimeout(t); };
    return d;
  };

  /**
   * throttle returns fn called at most once per wait ms: at once when idle,
   * else once at the end of the interval (the newest state is never lost).
   */
  HR.throttle = function (fn, wait) {
    var timer = null, pending = false, self, args;
    function fire() {
      timer = setTimeout(function () {
        timer = null;
        if (pending) { pending = false; fire(); }
      }, wait);
      fn.apply(self, args);
    }
    var th = function () {
      self = this; args = arguments;
      if (timer) { pending = true; return; }
      fire();
    };
    th.cancel = function () { clearTimeout(timer); timer = null; pending = false; };
    return th;
  };

  /**
   * follow calls fn now and again on every named event ('applied', 'live'),
   * at most once per wait ms (300 by default), until vm (a Vue instance) is
   * destroyed. Pages use it to re-fetch what they show.
   */
  HR.follow = function (vm, names, fn, wait) {
    var d = HR.throttle(fn, wait == null ? 300 : wait);
    var offs = [].concat(names).map(function (n) { return HR.events.on(n, function () { d(); }); });
    vm.$once('hook:beforeDestroy', function () { d.cancel(); offs.forEach(function (off) { off(); }); });
    d();
  };

  /* ------------------------------------------------------------------- api */
  /**
   * api fetches path (same origin, the session cookie authenticates) and
   * resolves to the parsed JSON body (null when empty). Writes repeat the
   * CSRF cookie in X-Hakuriver-CSRF. A 401 rejects with HR.AuthError (and
   * emits "unauthorized"); another error with an Error carrying the server's
   * "error" message and .status. With opts.full it resolves to
   * {data, headers, status} (paging headers: X-Hakuriver-More,
   * X-Hakuriver-Next-After).
   */
  HR.api = function (path, opts) {
    opts = opts || {};
    var method = (opts.method || 'GET').toUpperCase();
    var headers = { Accept: 'application/json' };
    var init = { method: method, headers: headers, credentials: 'same-origin' };
    if (opts.body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
    }
    if (method !== 'GET' && method !== 'HEAD') {
      headers['X-Hakuriver-CSRF'] = cookie('hakuriver_csrf');
    }
    if (opts.signal) init.signal = opts.signal;
    // A read cut by the network (a TypeError from fetch) is tried again
    // twice; a write never is (it may have been done).
    var tries = method === 'GET' ? 3 : 1;
    var attempt = function () {
      return fetch(path, init).catch(function (e) {
        if (--tries > 0 && e instanceof TypeError) {
          return new Promise(function (ok) { setTimeout(ok, 300); }).then(attempt);
        }
        throw e;
      });
    };
    return attempt().then(function (resp) {
      return resp.text().then(function (text) {
        var data = null;
        if (text) {
          try { data = JSON.parse(text); } catch (e) { data = { error: text.slice(0, 300) }; }
        }
        if (resp.status === 401) {
          var ae = new AuthError((data && data.error) || 'not signed in');
          HR.events.emit('unauthorized', ae);
          throw ae;
        }
        if (!resp.ok) {
          var msg = (data && data.error) || resp.status + ' ' + resp.statusText;
          if (data && data.detail) msg += ': ' + data.detail;
          var err = new Error(msg);
          err.status = resp.status;
          err.data = data;
          throw err;
        }
        return opts.full ? { data: data, headers: resp.headers, status: resp.status } : data;
      });
    });
  };

  /** query renders an object as a query string ("?a=1&b=x"), skipping empties. */
  HR.query = function (params) {
    var parts = [];
    Object.keys(params || {}).forEach(function (k) {
      var v = params[k];
      if (v === undefined || v === null || v === '') return;
      parts.push(encodeURIComponent(k) + '=' + encodeURIComponent(v));
    });
    return parts.length ? '?' + parts.join('&') : '';
  };

  /* ---------------------------------------------------------------- format */
  function toDate(ts) {
    if (ts === null || ts === undefined || ts === '') return null;
    var d = ts instanceof Date ? ts : new Date(ts);
    if (isNaN(d.getTime()) || d.getFullYear() < 1971) return null;
    return d;
  }
  function pad(n) { return (n < 10 ? '0' : '') + n; }

  HR.fmt = {
    /** bytes renders n with binary units like the CLI ("1.5GiB"); 0 is "-". */
    bytes: function (n) {
      if (n === null || n === undefined || isNaN(n) || n <= 0) return '-';
      if (n < 1024) return Math.round(n) + 'B';
      var units = 'KMGTP', div = 1024, exp = 0;
      for (var m = Math.floor(n / 1024); m >= 1024 && exp < 4; m = Math.floor(m / 1024)) { div *= 1024; exp++; }
      return (n / div).toFixed(1) + units[exp] + 'iB';
    },
    /** abs renders a time as local "2006-01-02 15:04:05" ("-" when unset). */
    abs: function (ts) {
      var d = toDate(ts);
      if (!d) return '-';
      return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' +
        pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
    },
    /** ago renders a time relative to now ("5s ago", "in 2m"). */
    ago: function (ts) {
      var d = toDate(ts);
      if (!d) return '-';
      var s = Math.round((Date.now() - d.getTime()) / 1000);
      if (Math.abs(s) < 2) return 'just now';
      var txt = HR.fmt.duration(Math.abs(s), true);
      return s >= 0 ? txt + ' ago' : 'in ' + txt;
    },
    /** duration renders seconds as "1h 2m 3s" (short: the two largest units). */
    duration: function (seconds, short) {
      if (seconds === null || seconds === undefined || isNaN(seconds)) return '-';
      var s = Math.max(0, Math.round(seconds));
      if (s === 0) return '0s';
      var parts = [];
      var d = Math.floor(s / 86400); s -= d * 86400;
      var h = Math.floor(s / 3600); s -= h * 3600;
      var m = Math.floor(s / 60); s -= m * 60;
      if (d) parts.push(d + 'd');
      if (h) parts.push(h + 'h');
      if (m) parts.push(m + 'm');
      if (s) parts.push(s + 's');
      return (short !== false ? parts.slice(0, 2) : parts).join(' ');
    },
    /** cmd renders a command and its arguments as one shell-quoted line. */
    cmd: function (command, args) {
      var words = [command || ''].concat(args || []);
      return words.map(function (w) {
        w = String(w);
        if (w !== '' && !/[\s"'\\$`|&;<>()*?\[\]{}#~!]/.test(w)) return w;
        return "'" + w.replace(/'/g, "'\\''") + "'";
      }).join(' ');
    },
    /** pct renders a percentage with one decimal ("-" when unknown). */
    pct: function (v) {
      if (v === null || v === undefined || isNaN(v)) return '-';
      return (Math.round(v * 10) / 10).toFixed(1) + '%';
    }
  };

  /** feed and live are the newest "applied" and "live" events (app.js). */
  HR.feed = null;
  HR.live = null;

  /**
   * nodeState derives a runner's state from GET /api/nodes: offline (not
   * online), drained, allocated (every core held), mixed (some held) or idle.
   */
  HR.nodeState = function (n) {
    if (n.status !== 'online') return 'offline';
    if (n.drained) return 'drained';
    if (n.total_cores > 0 && n.cores_in_use >= n.total_cores) return 'allocated';
    if (n.cores_in_use > 0 || n.tasks_in_use > 0 || (n.gpus_in_use || []).length) return 'mixed';
    return 'idle';
  };
  HR.nodeStates = ['idle', 'mixed', 'allocated', 'drained', 'offline'];

  /* ----------------------------------------------------------------- roles */
  var rank = { viewer: 1, user: 2, operator: 3, admin: 4 };
  /** can tells whether role (of HR.me) is at least need. */
  HR.can = function (need) {
    var me = HR.me || {};
    if (me.anonymous) return true; // open API: the server decides
    return (rank[me.role] || 0) >= (rank[need] || 99);
  };
  HR.me = null;

  /* ----------------------------------------------------------------- pages */
  HR.pages = [];
  /**
   * page registers a page: opts.path ("/tasks", "/task/:id"; params are the
   * component's prop `params`), opts.title, opts.nav (shown in the top
   * navigation), opts.component (Vue component options).
   */
  HR.page = function (name, opts) {
    var keys = [];
    var re = '^' + opts.path.replace(/\/+$/, '').replace(/:([A-Za-z_]+)/g, function (_, k) {
      keys.push(k);
      return '([^/]+)';
    }) + '/?$';
    HR.pages.push({
      name: name,
      path: opts.path,
      title: opts.title || name,
      nav: !!opts.nav,
      order: opts.order || 100,
      component: opts.component,
      re: new RegExp(re),
      keys: keys
    });
  };

  /** route finds the page of a path under /ui ("/task/12"). */
  HR.route = function (path) {
    var p = path.split(/[?#]/)[0].replace(/^\/ui/, '') || '/';
    if (p.length > 1) p = p.replace(/\/+$/, '');
    for (var i = 0; i < HR.pages.length; i++) {
      var m = HR.pages[i].re.exec(p);
      if (m) {
        var params = {};
        HR.pages[i].keys.forEach(function (k, j) { params[k] = decodeURIComponent(m[j + 1]); });
        return { page: HR.pages[i], params: params };
      }
    }
    return null;
  };

  /** go navigates to a dashboard path ("/ui/task/12" or "/task/12"). */
  HR.go = function (path) {
    if (path.indexOf('/ui') !== 0) path = '/ui' + (path.charAt(0) === '/' ? '' : '/') + path;
    if (path !== location.pathname + location.search) history.pushState({}, '', path);
    HR.events.emit('navigate', path);
  };

  /** link builds the href of a dashboard page. */
  HR.link = function (path) { return '/ui' + path; };

  /* ------------------------------------------------------- shared widgets */
  /** <hr-time :ts="..."> renders a relative time, absolute on hover. */
  Vue.component('hr-time', {
    props: ['ts'],
    template: '<time v-if="ts" :datetime="ts" :title="abs">{{ rel }}</time><span v-else>-</span>',
    data: function () { return { now: Date.now() }; },
    computed: {
      abs: function () { return HR.fmt.abs(this.ts); },
      rel: function () { void this.now; return HR.fmt.ago(this.ts); }
    },
    mounted: function () {
      var self = this;
      this.timer = setInterval(function () { self.now = Date.now(); }, 10000);
    },
    beforeDestroy: function () { clearInterval(this.timer); }
  });

  /** <hr-status :s="..."> renders a colored status word. */
  Vue.component('hr-status', {
    props: ['s'],
    template: '<span class="hr-status" :class="\'hr-s-\' + s">{{ s || \'-\' }}</span>'
  });

  /** <hr-error :err="..."> renders an error alert (nothing when null). */
  Vue.component('hr-error', {
    props: ['err'],
    template: '<div v-if="err" class="alert alert-danger py-2 hr-wrap" role="alert">{{ err.message || err }}</div>'
  });

  /** <hr-link to="/task/1"> is an in-app link (history navigation). */
  /** HR.terminalMixin is what the web terminals (an environment's shell,
   * exec into a task) share, whatever their socket speaks: the xterm.js in
   * ref "term", sized to its card; the text it shows, kept in the element's
   * data-output for tests and screen readers (xterm draws on a canvas); the
   * socket's URL on this replica; the close shown in state and err; and
   * the teardown. A component calls openTerm() in mounted, record() with
   * what it writes, and closed(ev) from its socket's onclose. */
  HR.terminalMixin = {
    data: function () { return { state: 'connecting', err: '' }; },
    beforeDestroy: function () {
      if (this.ws) this.ws.close();
      if (this.term) (this.term.dispose || this.term.destroy).call(this.term);
    },
    methods: {
      openTerm: function () {
        var el = this.$refs.term;
        var cols = Math.max(40, Math.floor((el.clientWidth - 8) / 9)) || 80;
        var term = new Terminal({ cols: cols, rows: 24, cursorBlink: true, convertEol: false });
        this.term = term;
        term.open(el);
        this.shown = '';
        return term;
      },
      /** wsURL is path (with its query) as a WebSocket URL on this replica. */
      wsURL: function (path) {
        return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + path;
      },
      closed: function (ev) {
        if (this.state.indexOf('exited') < 0) this.state = 'closed' + (ev.reason ? ': ' + ev.reason : '');
        if (ev.reason && !this.err) this.err = ev.reason;
      },
      record: function (d) {
        this.shown = (this.shown + d).slice(-65536);
        this.$el.setAttribute('data-output', this.shown);
      }
    }
  };

  Vue.component('hr-link', {
    props: ['to'],
    template: '<a :href="\'/ui\' + to"><slot></slot></a>'
  });
})();
