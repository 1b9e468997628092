package runner

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/gorilla/websocket"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/runner/executor"
)

// execWriteWait bounds one frame's write to the replica.
const execWriteWait = 30 * time.Second

// handleExec runs a command in a running task and streams it over a
// WebSocket (the protocol of api.ExecChanStdin and its siblings). Only
// replicas call it, with the cluster token (requireToken), after they
// checked the caller; the command starts before the upgrade, so that an
// unknown or stopped task gets a plain HTTP error.
func (a *Agent) handleExec(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
	if err != nil || id <= 0 {
		writeErr(w, http.StatusBadRequest, "task id: want a positive integer, got %q", chi.URLParam(r, "id"))
		return
	}
	req, err := api.ParseExecRequest(r.URL.Query())
	if err != nil {
		writeErr(w, http.StatusBadRequest, "%v", err)
		return
	}
	_, owner := a.states(r.Context())
	ex, ok := owner[id].(executor.Execer)
	if owner[id] == nil {
		writeErr(w, http.StatusNotFound, "Task %d not found or not tracked.", id)
		return
	}
	if !ok {
		writeErr(w, http.StatusNotImplemented, "task %d: its executor cannot exec", id)
		return
	}
	p, err := ex.Exec(r.Context(), id, executor.ExecSpec{Cmd: req.Cmd, TTY: req.TTY, Rows: uint(req.Rows), Cols: uint(req.Cols)})
	switch {
	case errors.Is(err, executor.ErrUnknownTask):
		writeErr(w, http.StatusNotFound, "Task %d not found or not tracked.", id)
		return
	case errors.Is(err, executor.ErrNotRunning):
		writeErr(w, http.StatusConflict, "%v", err)
		return
	case err != nil:
		writeErr(w, http.StatusInternalServerError, "%v", err)
		return
	}
	defer p.Close()
	up := websocket.Upgrader{ReadBufferSize: 32 << 10, WriteBufferSize: 32 << 10,
		// Replicas send no Origin; a browser never gets here with the
		// cluster token.
		CheckOrigin: func(r *http.Request) bool { return r.Header.Get("Origin") == "" }}
	conn, err := up.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade answered
	}
	defer conn.Close()
	conn.SetReadLimit(api.MaxExecFrameBytes + 1)
	begin := time.Now()
	a.log.Info("exec session opened", "task_id", id, "tty", req.TTY)
	code, err := pumpProcess(context.WithoutCancel(r.Context()), conn, p)
	a.log.Info("exec session closed", "task_id", id, "exit_code", code, "err", err, "took", time.Since(begin).Round(time.Millisecond))
}

// pumpProcess copies p's output to conn and conn's input to p until p's
// output ended (then its exit code is sent) or conn broke (then p is
// closed).
func pumpProcess(ctx context.Context, conn *websocket.Conn, p executor.Process) (int, error) {
	var wmu sync.Mutex
	send := func(frame []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		conn.SetWriteDeadline(time.Now().Add(execWriteWait)) //nolint:errcheck // the write reports it
		return conn.WriteMessage(websocket.BinaryMessage, frame)
	}
	var outs sync.WaitGroup
	copyOut := func(ch byte, r io.Reader) {
		defer outs.Done()
		buf := make([]byte, 32<<10)
		buf[0] = ch
		for {
			n, err := r.Read(buf[1:])
			if n > 0 && send(buf[:1+n]) != nil {
				return
			}
			if err != nil {
				return
			}
		}
	}
	outs.Add(1)
	go copyOut(api.ExecChanStdout, p.Stdout())
	tty := p.Stderr() == nil
	if e := p.Stderr(); e != nil {
		outs.Add(1)
		go copyOut(api.ExecChanStderr, e)
	}
	outDone := make(chan struct{})
	go func() { outs.Wait(); close(outDone) }()
	inDone := make(chan struct{})
	go func() {
		defer close(inDone)
		stdin := p.Stdin()
		for {
			_, data, err := conn.ReadMessage()
			if err != nil {
				return
			}
			if len(data) == 0 {
				continue
			}
			switch data[0] {
			case api.ExecChanStdin:
				if _, err := stdin.Write(data[1:]); err != nil {
					continue // the process closed its input; output may go on
				}
			case api.ExecChanControl:
				var c api.ExecControl
				if json.Unmarshal(data[1:], &c) != nil {
					continue
				}
				switch c.Type {
				case api.ExecResize:
					if c.Rows > 0 && c.Cols > 0 && c.Rows <= 10000 && c.Cols <= 10000 {
						p.Resize(ctx, uint(c.Rows), uint(c.Cols)) //nolint:errcheck // a failed resize keeps the old size
					}
				case api.ExecEOF:
					if tty {
						// A terminal has no end of input but Ctrl-D: it
						// ends a shell reading a script, as at a keyboard
						// (closing the terminal would hang it up, output
						// still unread).
						stdin.Write([]byte{4}) //nolint:errcheck // as a keystroke
						continue
					}
					stdin.Close() //nolint:errcheck // EOF is all it means
				}
			}
		}
	}()
	select {
	case <-outDone:
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		code, err := p.Wait(wctx)
		cancel()
		if err != nil {
			send(api.ControlFrame(api.ExecControl{Type: api.ExecError, Data: err.Error()})) //nolint:errcheck // closing anyway
		} else {
			send(api.ControlFrame(api.ExecControl{Type: api.ExecExit, Code: &code})) //nolint:errcheck // closing anyway
		}
		wmu.Lock()
		conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second)) //nolint:errcheck // best effort
		wmu.Unlock()
		// The peer answers the close; then the reader ends.
		select {
		case <-inDone:
		case <-time.After(2 * time.Second):
		}
		return code, err
	case <-inDone:
		p.Close() //nolint:errcheck // hangs the process up
		return -1, errors.New("the stream closed before the command ended")
	}
}
