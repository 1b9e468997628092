package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// devDirEnv names the running dev cluster's data dir for the `dev`
// subcommands (dev's export line sets it).
const devDirEnv = "HAKURIVER_DEV_DIR"

// devLastFile, under the user's cache directory, holds the data dir of the
// dev cluster started last: the subcommands' default when neither
// --data-dir nor $HAKURIVER_DEV_DIR is given.
const devLastFile = "hakuriver/dev-last"

// controlPath returns the control socket of a dev cluster in dir: in dir
// when its path is short enough for a Unix socket, else under a name
// derived from dir in the user's own 0700 cache directory (never a shared
// temp dir, where another user could take the name first or reach the
// socket before its chmod).
func controlPath(dir string) string {
	p := filepath.Join(dir, "dev.sock")
	if len(p) < 100 {
		return p
	}
	sum := sha256.Sum256([]byte(dir))
	name := "dev-" + hex.EncodeToString(sum[:6]) + ".sock"
	if cache, err := os.UserCacheDir(); err == nil {
		priv := filepath.Join(cache, "hakuriver")
		if os.MkdirAll(priv, 0o700) == nil && os.Chmod(priv, 0o700) == nil && len(filepath.Join(priv, name)) < 100 {
			return filepath.Join(priv, name)
		}
	}
	return filepath.Join(os.TempDir(), "hakuriver-"+name)
}

// rememberDevDir records dir as the dev cluster started last (best effort).
func rememberDevDir(dir string) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return
	}
	p := filepath.Join(cache, devLastFile)
	if os.MkdirAll(filepath.Dir(p), 0o700) == nil {
		os.WriteFile(p, []byte(dir+"\n"), 0o600) //nolint:errcheck // only a default for later commands
	}
}

// resolveDevDir returns the data dir the subcommands act on: --data-dir,
// else $HAKURIVER_DEV_DIR, else the one dev started last.
func resolveDevDir(flag string) (string, error) {
	if flag != "" {
		return filepath.Abs(flag)
	}
	if v := os.Getenv(devDirEnv); v != "" {
		return v, nil
	}
	if cache, err := os.UserCacheDir(); err == nil {
		if b, err := os.ReadFile(filepath.Join(cache, devLastFile)); err == nil {
			if d := strings.TrimSpace(string(b)); d != "" {
				return d, nil
			}
		}
	}
	return "", fmt.Errorf("which dev cluster? pass --data-dir (the \"data in\" line of dev's output) or set $%s", devDirEnv)
}

// serveControl serves the supervisor's control API on the Unix socket
// path (mode 0600) until ctx ends: GET /state, POST
// /member/{name}/{action}.
func (s *devSupervisor) serveControl(ctx context.Context, path string) (func(), error) {
	os.Remove(path) //nolint:errcheck // a stale socket of a dead dev
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close() //nolint:errcheck // the chmod error is the one to report
		return nil, fmt.Errorf("control socket: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /state", func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		b, err := json.Marshal(s.state)
		s.mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(b) //nolint:errcheck // the client went away
	})
	mux.HandleFunc("POST /member/{name}/{action}", func(w http.ResponseWriter, r *http.Request) {
		m, err := s.act(r.Context(), r.PathValue("name"), r.PathValue("action"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		s.mu.Lock()
		b, err := json.Marshal(m)
		s.mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(b) //nolint:errcheck // the client went away
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx }}
	go srv.Serve(ln) //nolint:errcheck // ends with Close
	return func() {
		srv.Close() //nolint:errcheck // on the way out
		os.Remove(path)
	}, nil
}

// act performs action on the member named name ("leader": the current
// leader's replica) and returns it.
func (s *devSupervisor) act(ctx context.Context, name, action string) (*devMember, error) {
	if name == "leader" {
		id, err := s.leader(ctx)
		if err != nil {
			return nil, fmt.Errorf("find the leader: %w", err)
		}
		name = id
	}
	s.mu.Lock()
	m := s.state.member(name)
	names := s.state.names()
	s.mu.Unlock()
	if m == nil {
		return nil, fmt.Errorf("no member %q: want one of %s", name, names)
	}
	switch action {
	case "kill":
		s.mu.Lock()
		running := s.procs[m.Name] != nil
		s.mu.Unlock()
		if !running {
			return nil, fmt.Errorf("%s is not running (%s)", m.Name, m.State)
		}
		s.stop(m, true)
	case "restart":
		s.stop(m, false)
		s.mu.Lock()
		err := s.start(m)
		s.saveLocked()
		s.mu.Unlock()
		if err != nil {
			return nil, err
		}
		if err := s.waitServing(ctx, m, 30*time.Second); err != nil {
			return nil, err
		}
	case "pause", "resume":
		s.mu.Lock()
		defer s.mu.Unlock()
		sig, state := syscall.SIGSTOP, statePaused
		if action == "resume" {
			sig, state = syscall.SIGCONT, stateRunning
		}
		if err := s.signal(m, sig); err != nil {
			return nil, err
		}
		m.State = state
		s.saveLocked()
	default:
		return nil, fmt.Errorf("unknown action %q: want kill, restart, pause or resume", action)
	}
	return m, nil
}

// devControl is a client of a running dev's control socket.
type devControl struct {
	dir  string
	http *http.Client
}

// dialDev connects to the dev cluster running in dir.
func dialDev(dir string) (*devControl, error) {
	st, err := loadDevState(dir)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return nil, fmt.Errorf("%s holds no dev cluster (no %s)", dir, devStateFile)
	}
	if st.PID == 0 || st.Control == "" {
		return nil, fmt.Errorf("the dev cluster in %s is not running: start it with `hakuriver dev --data-dir %s`", dir, dir)
	}
	sock := st.Control
	c := &devControl{dir: dir, http: &http.Client{
		Timeout: 60 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}},
	}}
	return c, nil
}

// call performs one control request and decodes its JSON answer into out.
func (c *devControl) call(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://dev"+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("the dev cluster in %s does not answer (is it still running?): %w", c.dir, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("read dev's answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return errors.New(strings.TrimSpace(string(b)))
	}
	return json.Unmarshal(b, out)
}

// newDevMemberCmd returns `dev kill|restart|pause|resume <member>`.
func newDevMemberCmd(g *clientFlags, action, short, long string) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   action + " <member>",
		Short: short,
		Long: long + `

<member> is host-N (replica dev-N), runner-N (runner dev-runner-N), a node
ID, or "leader" (the replica that leads now). The dev cluster is found
through --data-dir, else $` + devDirEnv + ` (set by dev's export line),
else the dev started last.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := g.format()
			if err != nil {
				return err
			}
			d, err := resolveDevDir(dir)
			if err != nil {
				return err
			}
			c, err := dialDev(d)
			if err != nil {
				return err
			}
			var m devMember
			if err := c.call(cmd.Context(), http.MethodPost, "/member/"+args[0]+"/"+action, &m); err != nil {
				return fmt.Errorf("%s %s: %w", action, args[0], err)
			}
			if format == outputJSON {
				return printJSON(cmd.OutOrStdout(), m)
			}
			pid := ""
			if m.PID != 0 {
				pid = fmt.Sprintf(", pid %d", m.PID)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s (%s): %s%s\n", m.Name, m.NodeID, m.State, pid)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "data-dir", "", "data dir of the running dev cluster (default $"+devDirEnv+", else the dev started last)")
	return cmd
}

// newDevStatusCmd returns `dev status`: the members, their PIDs and ports.
func newDevStatusCmd(g *clientFlags) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "List the members of the running dev cluster with their PIDs, states and ports",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := g.format()
			if err != nil {
				return err
			}
			d, err := resolveDevDir(dir)
			if err != nil {
				return err
			}
			c, err := dialDev(d)
			if err != nil {
				return err
			}
			var st devState
			if err := c.call(cmd.Context(), http.MethodGet, "/state", &st); err != nil {
				return err
			}
			if format == outputJSON {
				return printJSON(cmd.OutOrStdout(), st)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "MEMBER\tNODE\tSTATE\tPID\tAPI\tPORTS\n")
			for _, m := range st.Members {
				ports := fmt.Sprintf("gossip %d", m.GossipPort)
				if m.Kind == kindHost {
					ports = fmt.Sprintf("raft %d gossip %d ssh-proxy %d", m.RaftPort, m.GossipPort, m.SSHProxyPort)
				}
				pid := "-"
				if m.PID != 0 {
					pid = fmt.Sprint(m.PID)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", m.Name, m.NodeID, m.State, pid, m.url(st.TLS), ports)
			}
			fmt.Fprintf(tw, "dev\t-\trunning\t%d\t%s\t\n", st.PID, st.DataDir)
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&dir, "data-dir", "", "data dir of the running dev cluster (default $"+devDirEnv+", else the dev started last)")
	return cmd
}
