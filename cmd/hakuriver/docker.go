package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/ops/config"
	"github.com/hakuriver/hakuriver-ha/runner"
	"github.com/hakuriver/hakuriver-ha/runner/executor"
	"github.com/hakuriver/hakuriver-ha/runner/executor/docker"
	"github.com/hakuriver/hakuriver-ha/runner/statedir"
)

// dockerSlowCall is added to --timeout for calls that commit, save or pull
// images (the original added 180 s).
const dockerSlowCall = 30 * time.Minute

// newDockerCmd builds "hakuriver docker": environment containers and their
// tarballs.
func newDockerCmd(g *clientFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "docker",
		Short: "Manage Docker environments: containers on a host replica and their tarballs",
		Long: `An environment is a Docker container on a host replica, prepared once (install
packages through "docker shell") and then saved as a versioned tarball in
shared storage with "docker create-tar". Runners load the newest tarball
before they run a task in that environment (--container NAME).

Any replica answers: an environment lives on the replica whose Docker
created it, and the others pass its operations on to that replica.`,
		Example: `  hakuriver docker create-container python:3.12-alpine torch
  hakuriver docker shell torch
  hakuriver docker create-tar torch
  hakuriver docker list-tars
  hakuriver task submit --container torch -- python -c 'import torch'`,
	}
	cmd.AddCommand(
		newDockerCreateCmd(g),
		newDockerListCmd(g),
		newDockerOpCmd(g, "start", "Start a stopped environment container"),
		newDockerOpCmd(g, "stop", "Stop an environment container"),
		newDockerOpCmd(g, "delete", "Delete an environment container (its tarballs stay)"),
		newDockerCreateTarCmd(g),
		newDockerListTarsCmd(g),
		newDockerShellCmd(g),
	)
	return cmd
}

// withSlowClient is withClient with --timeout extended by dockerSlowCall,
// both for the whole call and for one exchange.
func (g *clientFlags) withSlowClient(cmd *cobra.Command, fn func(ctx context.Context, c *api.Client, format string) error) error {
	format, err := g.format()
	if err != nil {
		return err
	}
	if g.timeout <= 0 {
		return fmt.Errorf("invalid --timeout %s: must be positive", g.timeout)
	}
	cfg := api.DefaultClientConfig()
	cfg.Hosts = g.hostList()
	cfg.Timeout = g.timeout + dockerSlowCall
	cfg.RetryBudget = g.timeout
	cfg.UserAgent = "hakuriver-cli"
	cfg.Bearer = g.accountToken()
	if cfg.TLS, err = g.tlsConfig(); err != nil {
		return err
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		return fmt.Errorf("invalid --host: %w", err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout+dockerSlowCall)
	defer cancel()
	return fn(ctx, c, format)
}

func printDockerMessage(w io.Writer, format string, m api.DockerMessage) error {
	if format == outputJSON {
		return printJSON(w, m)
	}
	line := m.Message
	if m.Replica != "" {
		line += " (replica " + m.Replica + ")"
	}
	if _, err := fmt.Fprintln(w, line); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

func newDockerCreateCmd(g *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "create-container IMAGE NAME",
		Aliases: []string{"create"},
		Short:   "Create an environment container from a local image",
		Long: `Create environment container NAME from IMAGE on the replica that answers
(pulled there when it is missing and a registry is reachable) and keep it
running. NAME is lower case: letters, digits, '.', '_' and '-'. It is a
no-op when the environment exists.`,
		Example: `  hakuriver docker create-container hakuriver-test/busybox:latest base`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withSlowClient(cmd, func(ctx context.Context, c *api.Client, format string) error {
				m, err := c.CreateDockerContainer(ctx, args[0], args[1])
				if err != nil {
					return err
				}
				return printDockerMessage(cmd.OutOrStdout(), format, m)
			})
		},
	}
}

func newDockerOpCmd(g *clientFlags, op, short string) *cobra.Command {
	return &cobra.Command{
		Use:     op + " NAME",
		Aliases: []string{op + "-container"},
		Short:   short,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *api.Client, format string) error {
				var m api.DockerMessage
				var err error
				switch op {
				case "start":
					m, err = c.StartDockerContainer(ctx, args[0])
				case "stop":
					m, err = c.StopDockerContainer(ctx, args[0])
				default:
					m, err = c.DeleteDockerContainer(ctx, args[0])
				}
				if err != nil {
					return err
				}
				return printDockerMessage(cmd.OutOrStdout(), format, m)
			})
		},
	}
}

func newDockerListCmd(g *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls", "list-containers"},
		Short:   "List the environment containers of every replica",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *api.Client, format string) error {
				list, err := c.DockerContainers(ctx)
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				if format == outputJSON {
					if list == nil {
						list = []api.DockerContainer{}
					}
					return printJSON(w, list)
				}
				if len(list) == 0 {
					_, err := fmt.Fprintln(w, "No environment containers.")
					return err
				}
				tw := newTable(w)
				row(tw, "NAME", "REPLICA", "STATE", "STATUS", "IMAGE", "ID")
				for _, ct := range list {
					row(tw, ct.Name, orDash(ct.Replica), orDash(ct.State), orDash(ct.Status), orDash(ct.Image), orDash(ct.ID))
				}
				return flushTable(tw)
			})
		},
	}
}

func newDockerListTarsCmd(g *clientFlags) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:     "list-tars",
		Aliases: []string{"tars"},
		Short:   "List the environment tarballs in shared storage",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *api.Client, format string) error {
				sets, err := c.Tarballs(ctx)
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				if format == outputJSON {
					return printJSON(w, sets)
				}
				if len(sets) == 0 {
					_, err := fmt.Fprintln(w, "No environment tarballs.")
					return err
				}
				names := make([]string, 0, len(sets))
				for n := range sets {
					names = append(names, n)
				}
				sort.Strings(names)
				tw := newTable(w)
				row(tw, "NAME", "VERSION", "CREATED", "SIZE", "TARBALL")
				for _, n := range names {
					versions := sets[n].AllVersions
					if !all && len(versions) > 1 {
						versions = versions[:1]
					}
					for _, v := range versions {
						row(tw, n, fmt.Sprint(v.Timestamp), formatTime(time.Unix(v.Timestamp, 0)), formatBytes(v.Size), v.Tarball)
					}
				}
				return flushTable(tw)
			})
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "list every kept version, not only the newest")
	return cmd
}

func newDockerCreateTarCmd(g *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "create-tar NAME",
		Short: "Commit an environment and save it as a new tarball version",
		Long: `Commit environment container NAME to hakuriver/NAME:base and save it as
<shared_dir>/<container_dir>/NAME-<unix time>.tar. Runners load it before
their next task in NAME. Older versions beyond keep_tarballs are removed.
Progress is shown on stderr.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withSlowClient(cmd, func(ctx context.Context, c *api.Client, format string) error {
				p := newTarProgress(cmd.ErrOrStderr(), args[0])
				stop := p.start()
				res, err := c.CreateTar(ctx, args[0], p.update)
				stop(err == nil)
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				if format == outputJSON {
					return printJSON(w, res)
				}
				_, err = fmt.Fprintf(w, "%s\n%s (%s, version %d, replica %s)\n", res.Message, res.TarballPath,
					formatBytes(res.Size), res.Timestamp, orDash(res.Replica))
				return err
			})
		},
	}
}

// tarProgress draws create-tar's progress on stderr: a redrawn line with a
// spinner, the stage, a bar and the elapsed time on a terminal; one line
// per stage otherwise.
type tarProgress struct {
	w     io.Writer
	name  string
	tty   bool
	began time.Time

	mu    sync.Mutex
	stage string
	shown string // last stage printed (not a terminal)
	bytes int64
	total int64
	frame int
}

func newTarProgress(w io.Writer, name string) *tarProgress {
	p := &tarProgress{w: w, name: name, began: time.Now(), stage: "starting"}
	if f, ok := w.(*os.File); ok {
		p.tty = isTerminal(int(f.Fd()))
	}
	return p
}

// start redraws the line until the returned stop is called.
func (p *tarProgress) start() (stop func(ok bool)) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	if p.tty {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(120 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-done:
					return
				case <-t.C:
					p.draw()
				}
			}
		}()
	}
	return func(ok bool) {
		close(done)
		wg.Wait()
		if p.tty {
			p.draw()
			fmt.Fprintln(p.w) //nolint:errcheck // progress only
		}
	}
}

// update takes one progress line from the server.
func (p *tarProgress) update(tp api.TarProgress) {
	p.mu.Lock()
	p.stage, p.bytes, p.total = tp.Stage, tp.Bytes, tp.Total
	stage, shown := p.stage, p.shown
	p.shown = stage
	p.mu.Unlock()
	if !p.tty && stage != shown {
		fmt.Fprintf(p.w, "create-tar %s: %s (%s)\n", p.name, stage, time.Since(p.began).Round(time.Second)) //nolint:errcheck // progress only
	}
}

func (p *tarProgress) draw() {
	const spin = `|/-\`
	p.mu.Lock()
	defer p.mu.Unlock()
	p.frame++
	line := fmt.Sprintf("%c create-tar %s: %-6s", spin[p.frame%len(spin)], p.name, p.stage)
	if p.stage == "save" || p.stage == "done" {
		const width = 24
		filled := 0
		if p.total > 0 {
			filled = int(min(p.bytes*width/p.total, width))
		}
		line += fmt.Sprintf(" [%s%s] %s/%s", strings.Repeat("=", filled), strings.Repeat(" ", width-filled),
			formatBytes(p.bytes), formatBytes(p.total))
	}
	line += fmt.Sprintf("  %s", time.Since(p.began).Round(100*time.Millisecond))
	fmt.Fprintf(p.w, "\r\033[K%s", line) //nolint:errcheck // progress only
}

func newDockerShellCmd(g *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "shell NAME",
		Short: "Open an interactive shell in an environment container",
		Long: `Open /bin/bash (else /bin/sh) in running environment container NAME, over
the replica's WebSocket terminal. On a terminal the session is raw (keys
such as Ctrl-C go to the shell) and follows window resizes. Standard input
may also be a script: its end closes the shell. The command exits with the
shell's exit code.`,
		Example: `  hakuriver docker shell torch
  printf 'pip install numpy\nexit\n' | hakuriver docker shell torch`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			defer c.Close()
			return runShell(cmd.Context(), cmd, c, args[0], g.timeout)
		},
	}
}

// runShell connects to the terminal of environment name through the first
// replica that accepts the WebSocket and relays it to the user's terminal.
func runShell(ctx context.Context, cmd *cobra.Command, c *api.Client, name string, dialTimeout time.Duration) error {
	in, out, errOut := cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr()
	inFd, outFd := -1, -1
	if f, ok := in.(*os.File); ok && isTerminal(int(f.Fd())) {
		inFd = int(f.Fd())
	}
	if f, ok := out.(*os.File); ok && isTerminal(int(f.Fd())) {
		outFd = int(f.Fd())
	}
	rows, cols := termSize(outFd, inFd)
	conn, err := dialTerminal(ctx, c, name, rows, cols, dialTimeout)
	if err != nil {
		return err
	}
	defer conn.Close()
	var wmu sync.Mutex
	send := func(m api.TerminalMessage) error {
		wmu.Lock()
		defer wmu.Unlock()
		return conn.WriteJSON(m)
	}
	if inFd >= 0 {
		restore, err := makeRaw(inFd)
		if err != nil {
			return err
		}
		defer restore()
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		defer signal.Stop(winch)
		go func() { // ends when winch is stopped and the process exits
			for range winch {
				if r, c := termSize(outFd, inFd); r > 0 {
					send(api.TerminalMessage{Type: "resize", Rows: r, Cols: c}) //nolint:errcheck // the reader sees a broken socket
				}
			}
		}()
	}
	// Standard input cannot be interrupted: this goroutine ends with the
	// process (or at end of input).
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := in.Read(buf)
			if n > 0 && send(api.TerminalMessage{Type: "input", Data: string(buf[:n])}) != nil {
				return
			}
			if err != nil {
				if inFd < 0 {
					send(api.TerminalMessage{Type: "input", Data: "\x04"}) //nolint:errcheck // end of a script: Ctrl-D ends the shell
				}
				return
			}
		}
	}()
	nl := "\n"
	if inFd >= 0 {
		nl = "\r\n"
	}
	for {
		var m api.TerminalMessage
		if err := conn.ReadJSON(&m); err != nil {
			if websocket.IsCloseError(err, websocket.CloseNormalClosure) {
				return nil
			}
			return fmt.Errorf("terminal of %s closed: %w", name, err)
		}
		switch m.Type {
		case "output":
			if _, err := io.WriteString(out, m.Data); err != nil {
				return fmt.Errorf("write output: %w", err)
			}
		case "error":
			fmt.Fprintf(errOut, "%sERROR: %s%s", nl, m.Data, nl) //nolint:errcheck // the close that follows is the result
		case "exit":
			if m.Code != nil && *m.Code != 0 {
				return &exitCodeError{code: processExitCode(*m.Code), msg: fmt.Sprintf("shell exited with code %d", *m.Code)}
			}
			return nil
		}
	}
}

// dialTerminal opens the WebSocket on the first replica that accepts it.
func dialTerminal(ctx context.Context, c *api.Client, name string, rows, cols int, timeout time.Duration) (*websocket.Conn, error) {
	return dialWebSocket(ctx, c, c.TerminalURLs(name, rows, cols), "the terminal of "+name, timeout)
}

// isTerminal reports whether fd is a terminal.
func isTerminal(fd int) bool {
	_, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	return err == nil
}

// termSize returns the window size of the first terminal among fds.
func termSize(fds ...int) (rows, cols int) {
	for _, fd := range fds {
		if fd < 0 {
			continue
		}
		if ws, err := unix.IoctlGetWinsize(fd, unix.TIOCGWINSZ); err == nil && ws.Row > 0 {
			return int(ws.Row), int(ws.Col)
		}
	}
	return 0, 0
}

// makeRaw puts terminal fd in raw mode (as cfmakeraw) and returns the
// function that restores it.
func makeRaw(fd int) (restore func(), err error) {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, fmt.Errorf("read terminal mode: %w", err)
	}
	old := *t
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, t); err != nil {
		return nil, fmt.Errorf("set raw terminal mode: %w", err)
	}
	return func() {
		unix.IoctlSetTermios(fd, unix.TCSETS, &old) //nolint:errcheck // best effort on the way out
	}, nil
}

// newEnvManager returns the host replica's Docker environment manager. It
// does not contact Docker: a replica without it starts, and its
// environment calls answer 503.
func newEnvManager(c config.Config, log *slog.Logger) (*docker.Manager, error) {
	dc := docker.DefaultConfig()
	dc.SharedDir = c.Paths.SharedDir
	dc.ContainerDir = c.Docker.ContainerDir
	dc.KeepTarballs = c.Docker.KeepTarballs
	dc.Logger = log
	m, err := docker.NewManager(dc)
	if err != nil {
		return nil, fmt.Errorf("docker environments: %w", err)
	}
	return m, nil
}

// newDockerExecutor returns the runner's Docker executor and its closer,
// or a nil executor (container tasks then run natively) when Docker does
// not answer. Privileged containers are allowed when tasks_privileged is
// on in the runner's config.
func newDockerExecutor(ctx context.Context, rc runner.Config, dcfg config.Docker, sd *statedir.Dir) (executor.Executor, func(), error) {
	dc := docker.DefaultConfig()
	dc.SharedDir = rc.SharedDir
	dc.ContainerDir = dcfg.ContainerDir
	dc.KeepTarballs = max(dcfg.KeepTarballs, 1)
	id, err := sd.InstanceID()
	if err != nil {
		return nil, func() {}, err
	}
	// The label names this runner installation, not just its name, so two
	// clusters (or two dev instances) sharing one Docker Engine never
	// adopt each other's containers.
	dc.RunnerName = rc.Name + "@" + id
	dc.LocalTempDir = rc.LocalTempDir
	dc.StateDir = sd.Join(statedir.DockerTasks)
	dc.AllowPrivileged = dcfg.TasksPrivileged
	for _, m := range dcfg.AdditionalMounts {
		if src, _, ok := strings.Cut(m, ":"); ok && filepath.IsAbs(src) {
			dc.AllowedMountSources = append(dc.AllowedMountSources, src)
		}
	}
	dc.Logger = rc.Logger
	if ip := net.ParseIP(rc.AdvertiseAddr); ip != nil && !ip.IsUnspecified() {
		// Publish VPS ports only where the SSH proxy dials them.
		dc.VPSHostIP = rc.AdvertiseAddr
	}
	ex, err := docker.NewExecutor(dc)
	if err != nil {
		return nil, func() {}, err
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := ex.Ping(pctx); err != nil {
		ex.Close() //nolint:errcheck // unused
		if rc.Logger != nil {
			rc.Logger.Warn("Docker is unreachable: container tasks run natively", "err", err)
		}
		return nil, func() {}, nil
	}
	return ex, func() { ex.Close() }, nil //nolint:errcheck // closing on the way out
}
