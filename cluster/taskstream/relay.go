package taskstream

import (
	"errors"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// DefaultPingEvery is how often Relay pings both sides; a side silent
// (no message, no pong) for three intervals is taken as gone.
const DefaultPingEvery = 30 * time.Second

// Relay copies messages both ways between a (the client) and b (the
// runner) until one side closes or goes silent; then it closes the other,
// passing a normal close on. It returns how the first side ended. Both
// sides are pinged every DefaultPingEvery, so that a client that vanished
// without closing (a laptop off the network) ends the session and its
// command instead of leaving them open.
func Relay(a, b *websocket.Conn) error { return RelayPinging(a, b, DefaultPingEvery) }

// RelayPinging is Relay with pings every ping.
func RelayPinging(a, b *websocket.Conn, ping time.Duration) error {
	idle := 3 * ping
	errc := make(chan error, 2)
	var wmuA, wmuB sync.Mutex
	for _, c := range []*websocket.Conn{a, b} {
		c.SetReadDeadline(time.Now().Add(idle)) //nolint:errcheck // the read reports it
		c.SetPongHandler(func(string) error { return c.SetReadDeadline(time.Now().Add(idle)) })
	}
	pump := func(dst *websocket.Conn, dmu *sync.Mutex, src *websocket.Conn) {
		for {
			mt, data, err := src.ReadMessage()
			if err != nil {
				code := websocket.CloseNormalClosure
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					code = ce.Code
					if code == websocket.CloseNoStatusReceived {
						code = websocket.CloseNormalClosure
					}
				} else {
					code = websocket.CloseGoingAway
				}
				dmu.Lock()
				dst.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, ""), time.Now().Add(time.Second)) //nolint:errcheck // best effort
				dmu.Unlock()
				errc <- err
				return
			}
			src.SetReadDeadline(time.Now().Add(idle)) //nolint:errcheck // the next read reports it
			dmu.Lock()
			dst.SetWriteDeadline(time.Now().Add(30 * time.Second)) //nolint:errcheck // the write reports it
			err = dst.WriteMessage(mt, data)
			dmu.Unlock()
			if err != nil {
				errc <- err
				return
			}
		}
	}
	go pump(b, &wmuB, a)
	go pump(a, &wmuA, b)
	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(ping)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				for _, p := range []struct {
					c  *websocket.Conn
					mu *sync.Mutex
				}{{a, &wmuA}, {b, &wmuB}} {
					p.mu.Lock()
					p.c.WriteControl(websocket.PingMessage, nil, time.Now().Add(ping)) //nolint:errcheck // a dead side ends its read
					p.mu.Unlock()
				}
			}
		}
	}()
	first := <-errc
	close(stop)
	// Give the close a moment to reach the other side, then end both.
	select {
	case <-errc:
	case <-time.After(2 * time.Second):
	}
	a.Close()
	b.Close()
	return first
}
