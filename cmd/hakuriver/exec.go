package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
)

// execOptions holds the flags of "task exec".
type execOptions struct {
	stdin bool // -i: send standard input
	tty   bool // -t: allocate a terminal
}

func newTaskExecCmd(g *clientFlags) *cobra.Command {
	var o execOptions
	cmd := &cobra.Command{
		Use:   "exec ID [-it] -- COMMAND [ARG...]",
		Short: "Run a command inside a running task or VPS",
		Long: `Run COMMAND inside running task ID (a task ID or a task name): in its
container (docker exec) for container tasks and VPS; for a native task, as
the task's user, in its cgroup, with its environment and working directory.

Without -t the command's stdout and stderr stay separate. -i sends standard
input (without it the command reads end-of-file). -t gives the command a
terminal: on a terminal the session is raw (Ctrl-C and other keys go to the
command) and follows window resizes; with -i and an input that is not a
terminal (a pipe), -t is dropped so that the input's end reaches the
command. The exit code of hakuriver is the command's.

Any replica serves the session and the session does not depend on the
leader. Only the task's owner or an operator may exec into it, and every
session is recorded in the audit log (who, which task, when, how long;
never what was typed or printed).`,
		Example: `  hakuriver task exec 1790263384729600000 -- nvidia-smi
  hakuriver task exec train-3 -- sh -c 'ls -l /shared/out'
  hakuriver task exec -it 1790263384729600000 -- python
  tar c data | hakuriver task exec -i 1790263384729600000 -- tar x -C /tmp`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() != 1 {
				return errors.New("usage: hakuriver task exec ID [-it] -- COMMAND [ARG...] (the command goes after --)")
			}
			return execCommand(cmd, g, args[0], api.ExecRequest{Cmd: args[1:], TTY: o.tty}, o.stdin)
		},
	}
	cmd.Flags().BoolVarP(&o.stdin, "interactive", "i", false, "send standard input to the command")
	cmd.Flags().BoolVarP(&o.tty, "tty", "t", false, "give the command a terminal (stderr then merges into stdout)")
	return cmd
}

func newConnectCmd(g *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "connect ID",
		Short: "Open an interactive shell inside a running task or VPS",
		Long: `Open a shell (bash, else sh) with a terminal inside running task ID (a task
ID or a task name): the same as "hakuriver task exec -it ID" with the task's
default shell. No sshd needed, also for a VPS. Exit the shell (exit, Ctrl-D)
to end the session; hakuriver exits with the shell's exit code. When
standard input is not a terminal (a script piped in), the shell runs without
one and reads the script; its end ends the shell.`,
		Example: `  hakuriver connect 1790263384729600000
  hakuriver connect my-vps
  printf 'cd /shared && ls\n' | hakuriver connect my-vps`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return execCommand(cmd, g, args[0], api.ExecRequest{TTY: true}, true)
		},
	}
}

// execCommand resolves ref and runs one exec session.
func execCommand(cmd *cobra.Command, g *clientFlags, ref string, req api.ExecRequest, sendStdin bool) error {
	c, err := g.client()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx := cmd.Context()
	id, err := execTaskID(ctx, c, ref, g.timeout)
	if err != nil {
		return err
	}
	code, err := runExec(ctx, c, id, req, execIO{in: cmd.InOrStdin(), out: cmd.OutOrStdout(), errOut: cmd.ErrOrStderr(), sendStdin: sendStdin}, g.timeout)
	if err != nil {
		return err
	}
	if code != 0 {
		// Silent: the code is the command's, as with ssh or docker exec.
		return &exitCodeError{code: processExitCode(code)}
	}
	return nil
}

// execTaskID turns a task ID or a task name into a task ID.
func execTaskID(ctx context.Context, c *api.Client, ref string, timeout time.Duration) (int64, error) {
	if id, err := strconv.ParseInt(strings.TrimSpace(ref), 10, 64); err == nil {
		if id <= 0 {
			return 0, fmt.Errorf("task ID: want a positive number, got %s", ref)
		}
		return id, nil
	}
	lctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	r, err := resolveRef(lctx, c, ref, false)
	if err != nil {
		return 0, err
	}
	if r.batch {
		return 0, fmt.Errorf("%q names several tasks (batch %s): give one task ID", ref, r.id)
	}
	return strconv.ParseInt(r.id, 10, 64)
}

// execIO is a session's local ends.
type execIO struct {
	in          io.Reader
	out, errOut io.Writer
	sendStdin   bool
}

// runExec runs one exec session through the first replica that accepts it
// and returns the remote command's exit code.
func runExec(ctx context.Context, c *api.Client, id int64, req api.ExecRequest, eio execIO, dialTimeout time.Duration) (int, error) {
	inFd, outFd := -1, -1
	if f, ok := eio.in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		inFd = int(f.Fd())
	}
	if f, ok := eio.out.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		outFd = int(f.Fd())
	}
	if req.TTY && eio.sendStdin && inFd < 0 {
		// Input from a file or a pipe (a script): no terminal, as
		// kubectl exec does, so that its end ends the command (a
		// terminal has no end of input).
		req.TTY = false
	}
	if req.TTY {
		req.Rows, req.Cols = termSize(outFd, inFd)
	}
	conn, err := dialExec(ctx, c, id, req, dialTimeout)
	if err != nil {
		return -1, err
	}
	defer conn.Close()
	s := &execClient{conn: conn}
	if req.TTY && inFd >= 0 && eio.sendStdin {
		old, err := term.MakeRaw(inFd)
		if err != nil {
			return -1, fmt.Errorf("set the terminal to raw mode: %w", err)
		}
		defer term.Restore(inFd, old) //nolint:errcheck // best effort on the way out
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		defer signal.Stop(winch)
		go func() { // ends when winch is stopped and the process exits
			for range winch {
				if r, c := termSize(outFd, inFd); r > 0 {
					s.control(api.ExecControl{Type: api.ExecResize, Rows: r, Cols: c}) //nolint:errcheck // the reader sees a broken socket
				}
			}
		}()
	}
	if eio.sendStdin {
		// Standard input cannot be interrupted: this goroutine ends with
		// the process (or at end of input).
		go s.pumpStdin(eio.in)
	} else if !req.TTY {
		// No input: the command reads end-of-file (a terminal has none;
		// the command just gets no keys).
		s.control(api.ExecControl{Type: api.ExecEOF}) //nolint:errcheck // the reader sees a broken socket
	}
	return s.readOutput(eio.out, eio.errOut)
}

// execClient is the client's end of an exec stream.
type execClient struct {
	conn *websocket.Conn
	wmu  sync.Mutex
}

func (s *execClient) send(frame []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.conn.WriteMessage(websocket.BinaryMessage, frame)
}

func (s *execClient) control(c api.ExecControl) error { return s.send(api.ControlFrame(c)) }

// pumpStdin sends in as stdin frames, then end-of-file.
func (s *execClient) pumpStdin(in io.Reader) {
	buf := make([]byte, 32<<10)
	buf[0] = api.ExecChanStdin
	for {
		n, err := in.Read(buf[1:])
		if n > 0 && s.send(buf[:1+n]) != nil {
			return
		}
		if err != nil {
			s.control(api.ExecControl{Type: api.ExecEOF}) //nolint:errcheck // the reader sees a broken socket
			return
		}
	}
}

// readOutput writes the stream's output until the command's exit.
func (s *execClient) readOutput(out, errOut io.Writer) (int, error) {
	for {
		_, data, err := s.conn.ReadMessage()
		if err != nil {
			return -1, fmt.Errorf("exec session ended before the command did: %w", err)
		}
		if len(data) == 0 {
			continue
		}
		switch data[0] {
		case api.ExecChanStdout:
			if _, err := out.Write(data[1:]); err != nil {
				return -1, fmt.Errorf("write output: %w", err)
			}
		case api.ExecChanStderr:
			if _, err := errOut.Write(data[1:]); err != nil {
				return -1, fmt.Errorf("write output: %w", err)
			}
		case api.ExecChanControl:
			var c api.ExecControl
			if json.Unmarshal(data[1:], &c) != nil {
				continue
			}
			switch c.Type {
			case api.ExecExit:
				if c.Code == nil {
					return -1, errors.New("exec session: exit without a code")
				}
				s.wmu.Lock()
				s.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second)) //nolint:errcheck // best effort
				s.wmu.Unlock()
				return *c.Code, nil
			case api.ExecError:
				return -1, fmt.Errorf("exec session: %s", c.Data)
			}
		}
	}
}

// dialExec opens the exec WebSocket on the first replica that accepts it.
// An HTTP answer other than 503 is final (403, 404, 409); unreachable
// replicas are skipped.
func dialExec(ctx context.Context, c *api.Client, id int64, req api.ExecRequest, timeout time.Duration) (*websocket.Conn, error) {
	q := req.Query().Encode()
	var urls []string
	for _, h := range c.Hosts() {
		urls = append(urls, "ws"+strings.TrimPrefix(h, "http")+api.ExecPath(id)+"?"+q) // http→ws, https→wss
	}
	return dialWebSocket(ctx, c, urls, fmt.Sprintf("an exec session in task %d", id), timeout)
}
