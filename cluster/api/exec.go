package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// The exec stream (GET /api/task/{id}/exec on a replica, GET /exec/{id} on
// a runner) is a WebSocket of binary frames. The first byte of a frame
// names its channel; the rest is its payload:
//
//	0 stdin  client → server: bytes for the command's standard input
//	1 stdout server → client
//	2 stderr server → client (never with a TTY: the TTY merges both)
//	3 control, both ways: one ExecControl in JSON
//
// Control from the client: {"type":"resize","rows":R,"cols":C} and
// {"type":"eof"} (standard input ended). From the server, last:
// {"type":"exit","code":N} or {"type":"error","data":"..."}. The stream
// carries contents only between its two ends: nothing of it is logged or
// recorded.
const (
	ExecChanStdin   byte = 0
	ExecChanStdout  byte = 1
	ExecChanStderr  byte = 2
	ExecChanControl byte = 3
)

// ExecControl is the payload of a control frame of the exec stream.
type ExecControl struct {
	Type string `json:"type"`
	Rows int    `json:"rows,omitempty"`
	Cols int    `json:"cols,omitempty"`
	Code *int   `json:"code,omitempty"`
	Data string `json:"data,omitempty"`
}

// Types of ExecControl.
const (
	ExecResize = "resize"
	ExecEOF    = "eof"
	ExecExit   = "exit"
	ExecError  = "error"
)

// ControlFrame returns c as a control frame.
func ControlFrame(c ExecControl) []byte {
	b, _ := json.Marshal(c) //nolint:errcheck // a struct of plain fields always encodes
	return append([]byte{ExecChanControl}, b...)
}

// Bounds of an exec request.
const (
	// MaxExecArgs bounds the number of words of an exec command.
	MaxExecArgs = 256
	// MaxExecArgBytes bounds the whole command line.
	MaxExecArgBytes = 64 << 10
	// MaxExecFrameBytes bounds one frame either way; senders cut input
	// into frames of at most this size.
	MaxExecFrameBytes = 64 << 10
	// maxTermSide bounds rows and columns of a TTY.
	maxTermSide = 10000
)

// ExecRequest is what an exec stream runs, carried in the upgrade's query
// (cmd repeated, tty, rows, cols).
type ExecRequest struct {
	// Cmd is the command and its arguments; empty runs the task's default
	// shell (bash, else sh).
	Cmd []string
	// TTY gives the command a terminal (and merges its stderr into
	// stdout).
	TTY bool
	// Rows and Cols are the terminal's first size (0: the default).
	Rows, Cols int
}

// Query encodes r as the query of an exec upgrade.
func (r ExecRequest) Query() url.Values {
	q := url.Values{}
	for _, a := range r.Cmd {
		q.Add("cmd", a)
	}
	if r.TTY {
		q.Set("tty", "1")
	}
	if r.Rows > 0 && r.Cols > 0 {
		q.Set("rows", strconv.Itoa(r.Rows))
		q.Set("cols", strconv.Itoa(r.Cols))
	}
	return q
}

// ParseExecRequest reads and checks the query of an exec upgrade; the
// error names the field.
func ParseExecRequest(q url.Values) (ExecRequest, error) {
	r := ExecRequest{Cmd: q["cmd"]}
	if len(r.Cmd) > MaxExecArgs {
		return r, fmt.Errorf("cmd: at most %d words, got %d", MaxExecArgs, len(r.Cmd))
	}
	total := 0
	for i, a := range r.Cmd {
		total += len(a)
		if strings.IndexByte(a, 0) >= 0 {
			return r, fmt.Errorf("cmd[%d]: must not contain a NUL byte", i)
		}
	}
	if total > MaxExecArgBytes {
		return r, fmt.Errorf("cmd: at most %d bytes in all, got %d", MaxExecArgBytes, total)
	}
	if len(r.Cmd) > 0 && r.Cmd[0] == "" {
		return r, errors.New("cmd[0]: the command must not be empty")
	}
	switch v := q.Get("tty"); v {
	case "", "0", "false":
	case "1", "true":
		r.TTY = true
	default:
		return r, fmt.Errorf("tty: want 1 or 0, got %q", v)
	}
	var err error
	if r.Rows, err = termSide(q, "rows"); err != nil {
		return r, err
	}
	if r.Cols, err = termSide(q, "cols"); err != nil {
		return r, err
	}
	return r, nil
}

func termSide(q url.Values, name string) (int, error) {
	v := q.Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > maxTermSide {
		return 0, fmt.Errorf("%s: want a number from 0 to %d, got %q", name, maxTermSide, v)
	}
	return n, nil
}

// ExecPath is the replica's exec endpoint of task id.
func ExecPath(id int64) string { return "/api/task/" + strconv.FormatInt(id, 10) + "/exec" }

// RunnerExecPath is the runner's exec endpoint of task id (cluster token).
func RunnerExecPath(id int64) string { return "/exec/" + strconv.FormatInt(id, 10) }
