package sshproxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// fuzzVPS is the one task the fuzzed proxy knows: a running VPS, so that a
// well-formed request for it goes as far as the dial.
const fuzzVPS = 42

// fuzzToken is the one API token the fuzzed proxy knows.
const fuzzToken = "fuzz-token"

// fuzzSide is the proxy's view of the cluster for FuzzRequestLine: one VPS,
// one token, an anonymous role that reaches everything. It counts lookups;
// the dials are counted by the Server's Dial hook.
type fuzzSide struct{ lookups, dials atomic.Int64 }

func (f *fuzzSide) Lookup(_ context.Context, id int64) (Target, error) {
	f.lookups.Add(1)
	if id != fuzzVPS {
		return Target{}, fmt.Errorf("task %d: %w", id, ErrTaskNotFound)
	}
	return Target{
		Task: &fsm.Task{TaskID: fuzzVPS, TaskType: fsm.TaskVPS, Status: fsm.StatusRunning, AssignedNode: "n1", SSHPort: 2222, Owner: "alice"},
		Node: &fsm.Node{Hostname: "n1", URL: "http://192.0.2.1:8001", Status: fsm.NodeOnline},
	}, nil
}

func (f *fuzzSide) TokenCaller(_ context.Context, secret string) (Caller, bool) {
	return Caller{Name: "alice", Role: fsm.RoleUser}, secret == fuzzToken
}

func (f *fuzzSide) KeyCallers(ssh.PublicKey) []Caller { return nil }

func (f *fuzzSide) Anonymous() Caller {
	return Caller{Name: "anonymous", Role: fsm.RoleOperator, Anonymous: true}
}

// errNoDial is what the fuzzed proxy's Dial answers: it never connects.
var errNoDial = errors.New("fuzz: dialing refused")

// FuzzRequestLine sends arbitrary bytes as a line-protocol request to a
// real proxy (on a Unix socket) whose dials are recorded and refused. The parser
// must never panic; a line it refuses must be answered with its reason
// before any lookup or dial; an accepted one must write back to the same
// request; a caller with an unknown token gets no lookup; only a request for
// the one running VPS dials, once, its published address.
func FuzzRequestLine(f *testing.F) {
	for _, s := range []string{
		"REQUEST_TUNNEL 42\n", "REQUEST_TUNNEL 42 " + fuzzToken + "\n", "REQUEST_TUNNEL 42 wrong\n", "REQUEST_TUNNEL 7\n",
		"REQUEST_TUNNEL  42   " + fuzzToken + "  \n", "REQUEST_TUNNEL 42 a b\n", "REQUEST_TUNNEL -1\n", "REQUEST_TUNNEL +42\n",
		"REQUEST_TUNNEL 99999999999999999999\n", "REQUEST_TUNNEL 42", "REQUEST_TUNNEL\n", "request_tunnel 42\n", "\n", "",
		"SSH-2.0-OpenSSH_9.6\r\n", "REQUEST_TUNNEL 42\r\n", "REQUEST_TUNNEL 42 tok\x00en\n", "REQUEST_TUNNEL\t42\n",
		"REQUEST_TUNNEL 4\u00a02\n", "REQUEST_TUNNEL 42\nextra bytes after the line", "\x16\x03\x01\x00\x05hello",
	} {
		f.Add([]byte(s))
	}
	side := &fuzzSide{}
	srv, err := New(Config{Resolver: side, Accounts: side, MaxRequestLine: 256, RequestTimeout: 5 * time.Second,
		Dial: func(_ context.Context, _, addr string) (net.Conn, error) {
			side.dials.Add(1)
			if addr != "192.0.2.1:2222" {
				return nil, fmt.Errorf("dial of unexpected address %q", addr)
			}
			return nil, errNoDial
		}})
	if err != nil {
		f.Fatal(err)
	}
	// A Unix socket: the same Server code as TCP, without a TIME_WAIT
	// port per fuzzed connection.
	ln, err := net.Listen("unix", filepath.Join(f.TempDir(), "proxy.sock"))
	if err != nil {
		f.Fatal(err)
	}
	go srv.Serve(context.Background(), ln) //nolint:errcheck // ends with Close
	f.Cleanup(func() { srv.Close() })

	f.Fuzz(func(t *testing.T, data []byte) {
		id, token, terr := readRequest(bufio.NewReaderSize(bytes.NewReader(data), 256), 256)
		if terr == nil {
			line := "REQUEST_TUNNEL " + strconv.FormatInt(id, 10)
			if token != "" {
				line += " " + token
			}
			id2, token2, terr2 := readRequest(bufio.NewReader(bytes.NewReader([]byte(line+"\n"))), 256)
			if terr2 != nil || id2 != id || token2 != token {
				t.Fatalf("request %q read as %d %q; written back as %q it reads %d %q (%v)", data, id, token, line, id2, token2, terr2)
			}
		} else if !errors.Is(terr, ErrBadRequest) || terr.Reason == "" {
			t.Fatalf("refusal of %q: kind %v, reason %q", data, terr.Kind, terr.Reason)
		}

		lookups, dials := side.lookups.Load(), side.dials.Load()
		answer := exchange(t, ln.Addr().String(), data)
		dLookups, dDials := side.lookups.Load()-lookups, side.dials.Load()-dials
		switch {
		case terr != nil:
			if answer != "ERROR "+terr.Reason+"\n" || dLookups != 0 || dDials != 0 {
				t.Fatalf("malformed %q: answer %q, %d lookups, %d dials; want the refusal %q and nothing else", data, answer, dLookups, dDials, terr.Reason)
			}
		case token != "" && token != fuzzToken:
			if dLookups != 0 || dDials != 0 || answer != "ERROR "+reasonBadToken+"\n" {
				t.Fatalf("unknown token %q: answer %q, %d lookups, %d dials", token, answer, dLookups, dDials)
			}
		default:
			wantDials := int64(0)
			if id == fuzzVPS {
				wantDials = 1
			}
			if dLookups != 1 || dDials != wantDials || len(answer) < 7 || answer[:6] != "ERROR " {
				t.Fatalf("request for task %d: answer %q, %d lookups, %d dials (want 1, %d)", id, answer, dLookups, dDials, wantDials)
			}
		}
	})
}

// exchange sends data on a new connection to addr, half-closes it and
// returns everything the proxy answers.
func exchange(t *testing.T, addr string, data []byte) string {
	t.Helper()
	c, err := net.Dial("unix", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second)) //nolint:errcheck // a failed deadline shows up as an error below
	if _, err := c.Write(data); err != nil {
		t.Fatalf("write: %v", err)
	}
	c.(*net.UnixConn).CloseWrite() //nolint:errcheck // the proxy then sees the end of the request
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read the answer to %q: %v", data, err)
	}
	return string(b)
}
