/* feedworker.js: a SharedWorker holding one EventSource on /api/events for
 * every dashboard tab of this browser and replica. A browser keeps at most
 * six HTTP/1.1 connections per host: with one stream per tab, a seventh tab
 * of the same replica never loaded. Tabs connect with a port and send
 * "open" (subscribe, and open the stream unless it is) or "close"
 * (unsubscribe; the stream closes with the last tab). The worker relays
 * {type: "open"}, {type: "applied"|"live", data} and {type: "error",
 * closed} to every tab, and replays the newest "applied" and "live" events
 * to a tab that subscribes to a stream already open. */
'use strict';
var ports = [];
var es = null;
var last = {};

function send(port, msg) {
  try { port.postMessage(msg); } catch (e) { /* a closed tab */ }
}

function broadcast(msg) {
  ports.forEach(function (p) { send(p, msg); });
}

function openStream() {
  if (es && es.readyState !== EventSource.CLOSED) return;
  last = {};
  var s = new EventSource('/api/events');
  es = s;
  s.addEventListener('open', function () { broadcast({ type: 'open' }); });
  ['applied', 'live'].forEach(function (t) {
    s.addEventListener(t, function (ev) {
      last[t] = ev.data;
      broadcast({ type: t, data: ev.data });
    });
  });
  s.addEventListener('error', function () {
    broadcast({ type: 'error', closed: s.readyState === EventSource.CLOSED });
  });
}

self.addEventListener('connect', function (e) {
  var port = e.ports[0];
  port.addEventListener('message', function (m) {
    var i = ports.indexOf(port);
    if (m.data === 'open') {
      if (i < 0) ports.push(port);
      openStream();
      if (es.readyState === EventSource.OPEN) {
        send(port, { type: 'open' });
        ['applied', 'live'].forEach(function (t) {
          if (last[t] !== undefined) send(port, { type: t, data: last[t] });
        });
      }
    } else if (m.data === 'close') {
      if (i >= 0) ports.splice(i, 1);
      if (!ports.length && es) {
        es.close();
        es = null;
      }
    }
  });
  port.start();
});
