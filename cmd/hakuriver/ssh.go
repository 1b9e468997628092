package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/sshproxy"
)

// sshRelayGrace is how long "hakuriver ssh" lets tunnels drain after the
// ssh client exited.
const sshRelayGrace = 5 * time.Second

// sshOptions holds the flags of "hakuriver ssh".
type sshOptions struct {
	user         string
	localPort    int
	key          string
	proxyPort    int
	proxyCommand bool
}

// newSSHCmd builds "hakuriver ssh": an SSH session to a VPS task through
// the first reachable SSH proxy of the cluster, the same as an OpenSSH
// ProxyCommand, and "ssh config" for ~/.ssh/config.
func newSSHCmd(g *clientFlags) *cobra.Command {
	o := &sshOptions{}
	cmd := &cobra.Command{
		Use:   "ssh TASK_ID [-- SSH_ARGS...]",
		Short: "Open an SSH session to a VPS task through a host replica's SSH proxy",
		Long: `Open an SSH session to a VPS task. The tunnel goes through a host replica's
SSH proxy. hakuriver ssh asks the cluster where the proxies are (GET
/api/cluster of the first --host replica that answers): that replica's own
proxy first, then the other replicas' in the order listed; when one does not
answer the next one is tried. A proxy listening on 0.0.0.0 or :: is reached
at the host name of the replica's API URL. --proxy-port skips the question
and uses that port on the --host replicas' addresses instead.

hakuriver ssh listens on a local port, opens a tunnel for each connection
made to it, and runs the system ssh against that port, with host key
checking off (each session gets a new local port). Arguments after "--" go
to ssh after the destination: options such as -v, or a remote command. The
exit code is ssh's.

With --proxy-command, stdin and stdout are the tunnel, for use as an
OpenSSH ProxyCommand; "hakuriver ssh config" prints a ready ~/.ssh/config
block.

The tunnel request carries your API token (--token, HAKURIVER_TOKEN or the
one "hakuriver auth login" stored): you reach your own VPS, an operator or
admin every VPS. Without a token the proxy serves you only as far as the
cluster's anonymous_role allows.

The replicas also act as SSH jump hosts on the same port (the ssh_proxy
address "hakuriver cluster status -o json" lists): the jump host knows you
by your key, which must be registered on your account (ssh_keys) or be one
of the cluster's admin keys, so that key must be offered at the jump hop
too. OpenSSH's -J does not pass -i on
to the jump hop; with a key file give it to both hops:
  ssh -i KEY -o ProxyCommand='ssh -i KEY -p PORT -W %h:%p TASK_ID@HOST' root@TASK_ID
("ssh -J TASK_ID@HOST:PORT root@TASK_ID" works when the key is in ssh-agent
or is a default key such as ~/.ssh/id_ed25519).`,
		Example: `  hakuriver ssh 1790263384729600000
  hakuriver ssh --key ~/.ssh/vps_ed25519 1790263384729600000 -- -v
  hakuriver ssh 1790263384729600000 -- nproc
  ssh -o ProxyCommand='hakuriver ssh --proxy-command 1790263384729600000' root@vps
  hakuriver ssh config 1790263384729600000 --alias lab-vps >> ~/.ssh/config`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return errors.New("missing TASK_ID")
			}
			if n := cmd.ArgsLenAtDash(); n > 1 || n < 0 && len(args) > 1 {
				return fmt.Errorf("unexpected arguments %q: put ssh arguments after --", args[1:])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := sshTaskID(cmd, g, args[0])
			if err != nil {
				return err
			}
			op, err := newTunnelOpener(cmd.Context(), g, o.proxyPort, id)
			if err != nil {
				return err
			}
			if o.proxyCommand {
				if len(args) > 1 {
					return errors.New("--proxy-command takes no ssh arguments")
				}
				return runProxyCommand(cmd.Context(), op, cmd.InOrStdin(), cmd.OutOrStdout())
			}
			return runSSHSession(cmd, o, op, args[1:])
		},
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&o.user, "user", "root", "user name on the VPS")
	pf.StringVar(&o.key, "key", "", "private key file for ssh (-i)")
	pf.IntVar(&o.proxyPort, "proxy-port", 0, "use this SSH proxy port on the --host replicas' addresses instead of asking the cluster (host_ssh_proxy_port)")
	f := cmd.Flags()
	f.IntVar(&o.localPort, "local-port", 0, "local port for the ssh client (0 picks a free one)")
	f.BoolVar(&o.proxyCommand, "proxy-command", false, "use stdin/stdout as the tunnel (for an OpenSSH ProxyCommand)")
	cmd.AddCommand(newSSHConfigCmd(g, o))
	return cmd
}

func parseSSHTaskID(s string) (int64, error) {
	id, ok := sshproxy.ParseTaskID(s)
	if !ok {
		return 0, fmt.Errorf("invalid task ID %q: want a decimal number", s)
	}
	return id, nil
}

// newTunnelOpener returns a dialer over the proxies to try: port on the
// --host replicas' addresses when port is set, else those the cluster lists
// (findProxies).
func newTunnelOpener(ctx context.Context, g *clientFlags, port int, id int64) (*sshproxy.Dialer, error) {
	addrs, err := sshProxyAddrs(ctx, g, port)
	if err != nil {
		return nil, err
	}
	d := sshproxy.NewDialer(addrs, id, g.accountToken(), min(g.timeout, sshproxy.DefaultRequestTimeout))
	tlsCfg, err := g.proxyTLS()
	if err != nil {
		return nil, err
	}
	d.SetTLS(tlsCfg)
	return d, nil
}

// proxyTLS is the TLS config of the tunnel request: the cluster serves the
// line protocol over TLS when its API is https://, verified with --ca-file
// (else the system roots); nil for an http:// cluster.
func (g *clientFlags) proxyTLS() (*tls.Config, error) {
	hosts, err := api.ParseHosts(g.hostList()...)
	if err != nil {
		return nil, fmt.Errorf("invalid --host: %w", err)
	}
	if !strings.HasPrefix(hosts[0], "https://") {
		return nil, nil
	}
	cfg, err := g.tlsConfig()
	if err != nil || cfg != nil {
		return cfg, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS12}, nil
}

// sshProxyAddrs returns port on the --host replicas' addresses when port
// is set (--proxy-port), else the proxies the cluster lists.
func sshProxyAddrs(ctx context.Context, g *clientFlags, port int) ([]string, error) {
	if port < 0 || port > 65535 {
		return nil, fmt.Errorf("invalid --proxy-port %d", port)
	}
	if g.timeout <= 0 {
		return nil, fmt.Errorf("invalid --timeout %s: must be positive", g.timeout)
	}
	if port != 0 {
		addrs, err := api.SSHProxyAddrs(g.hostList(), port)
		if err != nil {
			return nil, fmt.Errorf("invalid --host: %w", err)
		}
		return addrs, nil
	}
	return findProxies(ctx, g)
}

// runProxyCommand relays stdin and stdout through one tunnel until the
// tunnel ends.
func runProxyCommand(ctx context.Context, op *sshproxy.Dialer, stdin io.Reader, stdout io.Writer) error {
	up, err := op.Dial(ctx)
	if err != nil {
		return err
	}
	defer up.Close()
	stop := context.AfterFunc(ctx, func() { up.Close() })
	defer stop()
	go func() {
		// Ends with stdin; the process may exit before (ssh closes both).
		io.Copy(up, stdin) //nolint:errcheck // the tunnel's end is what counts
		if cw, ok := up.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite() //nolint:errcheck // best effort
		}
	}()
	if _, err := io.Copy(stdout, up); err != nil && ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("ssh tunnel: %w", err)
	}
	return nil
}

// runSSHSession serves tunnels on a local port and runs the system ssh on
// it. The first tunnel is opened while ssh starts; when it is refused, ssh
// is stopped before it has said anything and the refusal is reported
// plainly.
func runSSHSession(cmd *cobra.Command, o *sshOptions, op *sshproxy.Dialer, extra []string) error {
	ctx := cmd.Context()
	sshBin, err := exec.LookPath("ssh")
	if err != nil {
		return &exitCodeError{code: 127, msg: fmt.Sprintf("the ssh client is not installed: %v", err)}
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(o.localPort)))
	if err != nil {
		return fmt.Errorf("listen on local port %d: %w", o.localPort, err)
	}
	local := &localTunnels{op: op, first: newFirstTunnel(ctx, op), errOut: cmd.ErrOrStderr(),
		quit: make(chan struct{}), conns: make(map[net.Conn]chan struct{})}
	local.wg.Add(1)
	go func() {
		defer local.wg.Done()
		local.serve(ctx, ln)
	}()
	defer local.close(ln)

	port := ln.Addr().(*net.TCPAddr).Port
	args := sshArgs(port, o, extra)
	// Said before ssh starts (its output goes to the same stream); a
	// refused tunnel is reported right after it.
	fmt.Fprintf(cmd.ErrOrStderr(), "Connecting to VPS task %d: ssh %s\n", op.TaskID(), strings.Join(args, " "))
	c := exec.CommandContext(ctx, sshBin, args...)
	c.Stdin, c.Stdout, c.Stderr = cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr()
	c.Cancel = func() error { return c.Process.Signal(syscall.SIGTERM) }
	c.WaitDelay = sshRelayGrace
	if err := c.Start(); err != nil {
		return fmt.Errorf("run ssh: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- c.Wait() }()
	select {
	case err = <-exited:
	case <-local.first.done:
		if ferr := local.first.err; ferr != nil {
			// ssh is still waiting for the server's first line.
			c.Process.Kill() //nolint:errcheck // it may have exited meanwhile
			<-exited
			return ferr
		}
		err = <-exited
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ee):
		code := ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
		return &exitCodeError{code: code, msg: fmt.Sprintf("ssh exited with code %d", code)}
	}
	return fmt.Errorf("run ssh: %w", err)
}

// sshArgs builds the ssh command line for a tunnel on local port port.
func sshArgs(port int, o *sshOptions, extra []string) []string {
	args := []string{"-p", strconv.Itoa(port), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"}
	if o.key != "" {
		args = append(args, "-i", o.key)
	}
	args = append(args, o.user+"@127.0.0.1")
	return append(args, extra...)
}

// firstTunnel is the tunnel opened while ssh starts, for its first
// connection.
type firstTunnel struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when the dial has ended
	conn   net.Conn      // set before done is closed when the dial succeeded
	err    error         // set before done is closed when it failed
}

func newFirstTunnel(ctx context.Context, op *sshproxy.Dialer) *firstTunnel {
	ctx, cancel := context.WithCancel(ctx)
	f := &firstTunnel{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(f.done)
		f.conn, f.err = op.Dial(ctx)
	}()
	return f
}

// localTunnels serves the local port: each connection gets a tunnel (the
// first one the tunnel opened while ssh started).
type localTunnels struct {
	op     *sshproxy.Dialer
	first  *firstTunnel
	errOut io.Writer

	quit chan struct{} // closed when close starts closing everything

	mu         sync.Mutex
	firstTaken bool
	// conns holds every open connection, local and tunnel; a local one
	// maps to a channel closed once everything it sent went into its
	// tunnel.
	conns  map[net.Conn]chan struct{}
	closed bool
	wg     sync.WaitGroup
}

func (l *localTunnels) serve(ctx context.Context, ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		sent := make(chan struct{})
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			c.Close()
			return
		}
		l.conns[c] = sent
		useFirst := !l.firstTaken
		l.firstTaken = true
		l.wg.Add(1)
		l.mu.Unlock()
		go func() {
			defer l.wg.Done()
			defer l.forget(c)
			l.relay(ctx, c, useFirst, sent)
		}()
	}
}

// relay connects c to a tunnel (the first one when useFirst) and relays
// until both directions end, closing sent once c's bytes all went in.
func (l *localTunnels) relay(ctx context.Context, c net.Conn, useFirst bool, sent chan struct{}) {
	var up net.Conn
	var err error
	if useFirst {
		select {
		case <-l.first.done:
			up, err = l.first.conn, l.first.err
		case <-ctx.Done():
			err = ctx.Err()
		}
	} else {
		up, err = l.op.Dial(ctx)
	}
	if err != nil {
		close(sent)
		if useFirst {
			// runSSHSession stops ssh and reports the error; closing c
			// before would have ssh report a closed connection.
			<-l.quit
			c.Close()
			return
		}
		fmt.Fprintf(l.errOut, "hakuriver ssh: %v\n", err)
		reason := "Internal client proxy error."
		var te *sshproxy.TunnelError
		if errors.As(err, &te) {
			reason = te.Reason
		}
		fmt.Fprintf(c, "Proxy Error: %s\r\n", reason)
		c.Close()
		return
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		close(sent)
		up.Close()
		c.Close()
		return
	}
	l.conns[up] = nil
	l.mu.Unlock()
	defer l.forget(up)
	sshproxy.RelayNotify(c, up, func() { close(sent) })
}

func (l *localTunnels) forget(c net.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.conns, c)
}

// close stops accepting, lets every tunnel pass on what ssh sent into it
// (for a while at most: a backgrounded ssh may still be using it), closes
// what is left without waiting for the VPS's side, and waits for the
// relays.
func (l *localTunnels) close(ln net.Listener) {
	ln.Close()
	// ssh has exited: a first tunnel still being opened is not needed.
	l.first.cancel()
	l.mu.Lock()
	var pending []chan struct{}
	for _, sent := range l.conns {
		if sent != nil {
			pending = append(pending, sent)
		}
	}
	l.mu.Unlock()
	grace := time.NewTimer(sshRelayGrace)
	defer grace.Stop()
wait:
	for _, sent := range pending {
		select {
		case <-sent:
		case <-grace.C:
			break wait
		}
	}
	close(l.quit)
	l.mu.Lock()
	l.closed = true
	for c := range l.conns {
		c.Close()
	}
	l.mu.Unlock()
	l.wg.Wait()
	// The first tunnel, when no connection took it.
	<-l.first.done
	l.mu.Lock()
	taken := l.firstTaken
	l.mu.Unlock()
	if !taken && l.first.conn != nil {
		l.first.conn.Close()
	}
}

// newSSHConfigCmd builds "hakuriver ssh config".
func newSSHConfigCmd(g *clientFlags, o *sshOptions) *cobra.Command {
	var alias string
	var jumpPort int
	cmd := &cobra.Command{
		Use:   "config TASK_ID",
		Short: "Print a ~/.ssh/config block that reaches a VPS task by name",
		Long: `Print a ~/.ssh/config Host block for a VPS task. It uses this hakuriver
binary as the ProxyCommand, with the current --host replicas, so that
"ssh ALIAS", scp, rsync and editors reach the VPS through the first
reachable replica. A commented alternative uses a replica's SSH jump host
and needs no hakuriver binary: with --key a ProxyCommand that gives the key
to the jump hop too (OpenSSH does not pass IdentityFile on to a ProxyJump
hop), else a ProxyJump line. The jump host's address is the first SSH proxy
the cluster lists, or --jump-port (default --proxy-port) on the first --host
replica.`,
		Example: `  hakuriver ssh config 1790263384729600000 --alias lab-vps --key ~/.ssh/vps_ed25519 >> ~/.ssh/config
  ssh lab-vps`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := sshTaskID(cmd, g, args[0])
			if err != nil {
				return err
			}
			hosts, err := api.ParseHosts(g.hostList()...)
			if err != nil {
				return fmt.Errorf("invalid --host: %w", err)
			}
			if jumpPort == 0 {
				jumpPort = o.proxyPort
			}
			if jumpPort < 0 || jumpPort > 65535 {
				return fmt.Errorf("invalid --jump-port %d", jumpPort)
			}
			jump, err := sshProxyAddrs(cmd.Context(), g, jumpPort)
			if err != nil {
				return err
			}
			exe, err := os.Executable()
			if err != nil {
				exe = "hakuriver"
			}
			if alias == "" {
				alias = "hakuriver-" + strconv.FormatInt(id, 10)
			}
			return writeSSHConfig(cmd.OutOrStdout(), sshConfigBlock{
				alias: alias, id: id, user: o.user, key: o.key, exe: exe,
				hosts: hosts, proxyPort: o.proxyPort, jump: jump[0], caFile: g.caFilePath(),
			})
		},
	}
	cmd.Flags().StringVar(&alias, "alias", "", `Host name of the block (default "hakuriver-TASK_ID")`)
	cmd.Flags().IntVar(&jumpPort, "jump-port", 0, "jump host port on the first --host replica for the jump-host form (default --proxy-port, else ask the cluster)")
	return cmd
}

// sshConfigBlock is what "ssh config" prints.
type sshConfigBlock struct {
	alias, user, key, exe string
	id                    int64
	hosts                 []string
	proxyPort             int
	jump                  string // host:port of a replica's jump host
	caFile                string // --ca-file of the ProxyCommand ("" = none)
}

func writeSSHConfig(w io.Writer, b sshConfigBlock) error {
	id := strconv.FormatInt(b.id, 10)
	proxy := []string{b.exe, "--host", strings.Join(b.hosts, ",")}
	if b.caFile != "" {
		proxy = append(proxy, "--ca-file", b.caFile)
	}
	proxy = append(proxy, "ssh", "--proxy-command")
	if b.proxyPort != 0 {
		proxy = append(proxy, "--proxy-port", strconv.Itoa(b.proxyPort))
	}
	proxy = append(proxy, id)
	var sb strings.Builder
	fmt.Fprintf(&sb, "# HakuRiver VPS task %s: add to ~/.ssh/config, then run \"ssh %s\".\n", id, b.alias)
	fmt.Fprintf(&sb, "# Each connection is tunnelled through the first reachable host replica.\n")
	fmt.Fprintf(&sb, "Host %s\n", b.alias)
	fmt.Fprintf(&sb, "    HostName 127.0.0.1\n")
	fmt.Fprintf(&sb, "    User %s\n", b.user)
	fmt.Fprintf(&sb, "    ProxyCommand %s\n", sshConfigCommand(proxy))
	fmt.Fprintf(&sb, "    StrictHostKeyChecking no\n")
	fmt.Fprintf(&sb, "    UserKnownHostsFile /dev/null\n")
	if b.key != "" {
		fmt.Fprintf(&sb, "    IdentityFile %s\n", sshConfigWord(b.key))
		fmt.Fprintf(&sb, "    IdentitiesOnly yes\n")
	}
	fmt.Fprintf(&sb, "#\n")
	fmt.Fprintf(&sb, "# Or through a replica's SSH jump host, without hakuriver on this machine: it\n")
	fmt.Fprintf(&sb, "# lets through only a key registered on your account (ssh_keys) or an admin key.\n")
	fmt.Fprintf(&sb, "# Use these two lines instead of HostName and ProxyCommand (any replica will\n")
	fmt.Fprintf(&sb, "# do; the jump host's own key is persistent):\n")
	fmt.Fprintf(&sb, "#     HostName %s\n", id)
	if b.key == "" {
		fmt.Fprintf(&sb, "#     ProxyJump %s@%s\n", id, b.jump)
	} else {
		fmt.Fprintf(&sb, "#     ProxyCommand %s\n", jumpProxyCommand(b.key, id, b.jump))
		fmt.Fprintf(&sb, "# (OpenSSH does not pass IdentityFile on to a ProxyJump hop, so the jump hop\n")
		fmt.Fprintf(&sb, "# gets the key itself; \"ProxyJump %s@%s\" works when the key is in ssh-agent.)\n", id, b.jump)
	}
	_, err := io.WriteString(w, sb.String())
	return err
}

// jumpProxyCommand renders a ProxyCommand that opens the jump hop to the
// jump host at jump (host:port) as user id with key, and forwards to the
// HostName (%h, the task ID) through it.
func jumpProxyCommand(key, id, jump string) string {
	host, port, err := net.SplitHostPort(jump)
	if err != nil {
		host, port = jump, "22"
	}
	return sshConfigCommand([]string{"ssh", "-i", key, "-o", "IdentitiesOnly=yes", "-p", port}) +
		" -W %h:%p " + sshConfigCommand([]string{id + "@" + host})
}

// sshConfigWord quotes s for a shell, as ssh runs ProxyCommand through
// one; words of letters, digits and _./:,=@+- stay bare.
func sshConfigWord(s string) string {
	safe := s != ""
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_./:,=@+-", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// sshConfigCommand renders a ProxyCommand: shell-quoted words, with "%"
// doubled since ssh_config expands %-tokens there.
func sshConfigCommand(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = sshConfigWord(w)
	}
	return strings.ReplaceAll(strings.Join(q, " "), "%", "%%")
}
