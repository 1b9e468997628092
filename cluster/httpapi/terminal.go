package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/cluster/auth"
	"github.com/hakuriver/hakuriver-ha/ops/environment"
)

// Terminal is the WebSocket shell into an environment container (the
// original's messages: input, resize, output, error; plus exit). A browser
// upgrade must come from the page this replica served (checkWebSocketOrigin)
// before anything else happens.
func (e *EnvAPI) Terminal(w http.ResponseWriter, r *http.Request) {
	if err := checkWebSocketOrigin(r); err != nil {
		writeError(w, err)
		return
	}
	name, ok := e.servedHere(w, r)
	if !ok {
		return
	}
	up := websocket.Upgrader{ReadBufferSize: 4096, WriteBufferSize: 4096, CheckOrigin: auth.SameOrigin}
	conn, err := up.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade answered the client
	}
	defer conn.Close()
	// Input messages are keystrokes and resizes: refuse anything large
	// instead of buffering it.
	conn.SetReadLimit(64 << 10)
	t := &terminal{conn: conn}
	m, err := e.local(r.Context())
	if err != nil {
		t.fail(websocket.CloseInternalServerErr, err.Error())
		return
	}
	rows, _ := strconv.Atoi(r.URL.Query().Get("rows")) //nolint:errcheck // 0 keeps the default size
	cols, _ := strconv.Atoi(r.URL.Query().Get("cols")) //nolint:errcheck // same
	s, err := m.Shell(r.Context(), name, uint(max(rows, 0)), uint(max(cols, 0)))
	switch {
	case errors.Is(err, environment.ErrUnavailable):
		t.fail(websocket.CloseInternalServerErr, "Docker connection error: "+err.Error())
		return
	case errors.Is(err, environment.ErrNoShell):
		t.fail(websocket.CloseInternalServerErr, "No suitable shell found in container.")
		return
	case errors.Is(err, environment.ErrNotFound):
		t.fail(websocket.ClosePolicyViolation, fmt.Sprintf("Container '%s' not found.", name))
		return
	case errors.Is(err, environment.ErrConflict):
		t.fail(websocket.ClosePolicyViolation, environment.Reason(err, environment.ErrConflict))
		return
	case err != nil:
		t.fail(websocket.CloseInternalServerErr, err.Error())
		return
	}
	defer s.Close()
	e.log.Info("environment shell opened", "environment", name, "shell", s.ShellPath())
	t.send(api.TerminalMessage{Type: "output", Data: "Terminal connected.\r\n"}) //nolint:errcheck // run notices a dead socket
	t.run(r.Context(), s)
	e.log.Info("environment shell closed", "environment", name)
}

// checkWebSocketOrigin refuses (403) a WebSocket upgrade from another
// origin: a browser sends the session cookie with a page's WebSocket to any
// port of this host (SameSite does not look at ports), so another site's
// script could otherwise drive a shell with the user's session. An upgrade
// authenticated by that cookie must carry the Origin header browsers send,
// and it must be this replica's; one with a bearer token or none (CLI
// tools) may omit it.
func checkWebSocketOrigin(r *http.Request) error {
	if !auth.SameOrigin(r) {
		return forbidden(fmt.Sprintf("forbidden: cross-origin WebSocket (Origin %q is not this host %q)", r.Header.Get("Origin"), r.Host))
	}
	if principal(r).ViaCookie && r.Header.Get("Origin") == "" {
		return forbidden("forbidden: a WebSocket authenticated by the session cookie must carry the Origin header")
	}
	return nil
}

// terminal pumps one shell session over one WebSocket.
type terminal struct {
	conn *websocket.Conn
	wmu  sync.Mutex // gorilla allows one writer at a time
}

func (t *terminal) send(m api.TerminalMessage) error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	t.conn.SetWriteDeadline(time.Now().Add(10 * time.Second)) //nolint:errcheck // a failed write reports it
	return t.conn.WriteJSON(m)
}

// fail sends an error message and closes with code.
func (t *terminal) fail(code int, msg string) {
	t.send(api.TerminalMessage{Type: "error", Data: msg}) //nolint:errcheck // closing anyway
	t.close(code, "")
}

func (t *terminal) close(code int, reason string) {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	deadline := time.Now().Add(time.Second)
	t.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), deadline) //nolint:errcheck // best effort
}

// run copies shell output to the socket and socket input to the shell
// until either side ends; when the shell ends, its exit code is sent.
func (t *terminal) run(ctx context.Context, s EnvShell) {
	outDone := make(chan struct{})
	go func() {
		defer close(outDone)
		buf := make([]byte, 4096)
		var carry []byte
		for {
			n, err := s.Read(buf)
			if n > 0 {
				data := append(carry, buf[:n]...)
				cut := UTF8Prefix(data)
				if cut > 0 && t.send(api.TerminalMessage{Type: "output", Data: strings.ToValidUTF8(string(data[:cut]), "\uFFFD")}) != nil {
					return
				}
				carry = append([]byte(nil), data[cut:]...)
			}
			if err != nil {
				return
			}
		}
	}()
	inDone := make(chan struct{})
	go func() {
		defer close(inDone)
		for {
			_, data, err := t.conn.ReadMessage()
			if err != nil {
				return
			}
			var m api.TerminalMessage
			if json.Unmarshal(data, &m) != nil {
				continue // the original ignores invalid JSON
			}
			switch m.Type {
			case "input":
				if _, err := io.WriteString(s, m.Data); err != nil {
					return
				}
			case "resize":
				if m.Rows > 0 && m.Cols > 0 {
					s.Resize(ctx, uint(m.Rows), uint(m.Cols)) //nolint:errcheck // a failed resize leaves the old size
				}
			}
		}
	}()
	select {
	case <-outDone:
		ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		code, err := s.ExitCode(ectx)
		cancel()
		if err != nil {
			t.send(api.TerminalMessage{Type: "error", Data: err.Error()}) //nolint:errcheck // closing anyway
		} else {
			t.send(api.TerminalMessage{Type: "exit", Code: &code}) //nolint:errcheck // closing anyway
		}
		t.close(websocket.CloseNormalClosure, "")
		s.Close() //nolint:errcheck // ends the input side too
		t.conn.Close()
		<-inDone
	case <-inDone:
		s.Close() //nolint:errcheck // hangs the shell up
		<-outDone
		t.close(websocket.CloseNormalClosure, "")
	}
}

// UTF8Prefix returns the length of b without a trailing incomplete UTF-8
// sequence, which is sent with the next chunk instead of being mangled.
func UTF8Prefix(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return i
			}
			break
		}
	}
	return len(b)
}
