/* Terminal into a running task or VPS (xterm.js over the WebSocket of
 * GET /api/task/{id}/exec: binary frames, the first byte names the channel:
 * 0 stdin, 1 stdout, 2 stderr, 3 control JSON), and the CLI commands that
 * reach a task from a workstation. The session cookie authenticates the
 * WebSocket; the replica checks its Origin. No page of its own: the task
 * page (which is also a VPS's page) uses both components. */
(function () {
  'use strict';

  var STDIN = 0, STDOUT = 1, STDERR = 2, CONTROL = 3;

  /** frame returns channel ch followed by the bytes of s. */
  function frame(ch, bytes) {
    var f = new Uint8Array(bytes.length + 1);
    f[0] = ch;
    f.set(bytes, 1);
    return f;
  }

  /** <hr-exec-terminal :id> is a shell (the task's default) in running task id. */
  Vue.component('hr-exec-terminal', {
    props: ['id'],
    mixins: [HR.terminalMixin],
    template: `
<div class="card mt-3" id="task-terminal">
  <div class="card-header d-flex align-items-center gap-2 py-1">
    <strong>Terminal: task {{ id }}</strong> <span class="hr-muted" id="task-terminal-state">{{ state }}</span>
    <button class="btn btn-sm btn-outline-secondary ms-auto" type="button" @click="$emit('close')" id="task-terminal-close">Close</button>
  </div>
  <div class="hr-term" ref="term" role="application" aria-label="terminal"></div>
  <div v-if="err" class="card-footer small text-danger hr-wrap" id="task-terminal-error">{{ err }}</div>
</div>`,
    mounted: function () {
      var self = this;
      var term = self.openTerm();
      var enc = new TextEncoder();
      var dec = new TextDecoder('utf-8');
      var ws = new WebSocket(self.wsURL('/api/task/' + encodeURIComponent(self.id) + '/exec?tty=1&rows=' + term.rows + '&cols=' + term.cols));
      ws.binaryType = 'arraybuffer';
      self.ws = ws;
      var control = function (c) { if (ws.readyState === 1) ws.send(frame(CONTROL, enc.encode(JSON.stringify(c)))); };
      ws.onopen = function () { self.state = 'connected'; term.focus(); };
      ws.onmessage = function (ev) {
        if (!(ev.data instanceof ArrayBuffer)) return;
        var b = new Uint8Array(ev.data);
        if (!b.length) return;
        if (b[0] === STDOUT || b[0] === STDERR) {
          var s = dec.decode(b.subarray(1), { stream: true });
          term.write(s);
          self.record(s);
        } else if (b[0] === CONTROL) {
          var m;
          try { m = JSON.parse(new TextDecoder().decode(b.subarray(1))); } catch (e) { return; }
          if (m.type === 'exit') { self.state = 'exited (' + m.code + ')'; }
          else if (m.type === 'error') { self.err = m.data; term.write('\r\n\x1b[31m' + m.data + '\x1b[0m\r\n'); }
        }
      };
      ws.onclose = function (ev) {
        self.closed(ev);
        if (ev.code === 1006 && self.state === 'closed' && !self.err) self.err = 'The replica refused or lost the session (only the task\'s owner or an operator may open it, and only while it runs).';
      };
      ws.onerror = function () { self.state = 'connection error'; };
      term.on('data', function (d) { if (ws.readyState === 1) ws.send(frame(STDIN, enc.encode(d))); });
      term.on('resize', function (s) { control({ type: 'resize', rows: s.rows, cols: s.cols }); });
    }
  });

  /** <hr-access-commands :id :vps> lists the CLI commands that reach task id. */
  Vue.component('hr-access-commands', {
    props: ['id', 'vps'],
    data: function () { return { copied: '' }; },
    computed: {
      lines: function () {
        var id = this.id;
        var out = [
          { what: 'shell', cmd: 'hakuriver connect ' + id },
          { what: 'command', cmd: 'hakuriver task exec ' + id + ' -- ' + (this.vps ? 'uptime' : 'ps aux') },
          { what: 'port', cmd: 'hakuriver forward ' + id + ' 8888:8888' },
          { what: 'copy in', cmd: 'hakuriver cp ./file ' + id + ':/tmp/file' },
          { what: 'copy out', cmd: 'hakuriver cp ' + id + ':/tmp/file ./file' }
        ];
        return out;
      }
    },
    template: `
<div id="task-access">
  <div v-for="l in lines" :key="l.what" class="d-flex align-items-center gap-2 mb-1">
    <span class="hr-muted small" style="min-width: 5rem">{{ l.what }}</span>
    <code class="hr-wrap hr-access-cmd">{{ l.cmd }}</code>
    <button class="btn btn-sm btn-outline-secondary py-0" type="button" @click="copy(l.cmd)" :aria-label="'copy: ' + l.cmd">{{ copied === l.cmd ? 'copied' : 'copy' }}</button>
  </div>
</div>`,
    methods: {
      copy: function (s) {
        var self = this;
        HR.taskUtil.copy(s).then(function () { self.copied = s; }, function () {});
      }
    }
  });
})();
