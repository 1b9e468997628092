package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
)

// portMapping is one LOCAL:REMOTE argument of `hakuriver forward`.
type portMapping struct {
	Local  int `json:"local_port"`
	Remote int `json:"remote_port"`
}

// parsePortMapping reads "LOCAL:REMOTE" (LOCAL 0: any free port) or
// "REMOTE" (the same port number locally).
func parsePortMapping(s string) (portMapping, error) {
	l, r, ok := strings.Cut(s, ":")
	if !ok {
		l, r = s, s
	}
	lp, err1 := strconv.Atoi(l)
	rp, err2 := strconv.Atoi(r)
	if err1 != nil || err2 != nil || lp < 0 || lp > 65535 || rp < 1 || rp > 65535 {
		return portMapping{}, fmt.Errorf("%q: want LOCAL:REMOTE port numbers (LOCAL 0 picks a free port, REMOTE 1-65535)", s)
	}
	return portMapping{Local: lp, Remote: rp}, nil
}

// forwardListing is what `hakuriver forward --output json` prints once
// every local port listens.
type forwardListing struct {
	TaskID   string         `json:"task_id"`
	Forwards []forwardEntry `json:"forwards"`
}

type forwardEntry struct {
	Address    string `json:"local_address"`
	LocalPort  int    `json:"local_port"`
	RemotePort int    `json:"remote_port"`
	URL        string `json:"url"`
}

func newForwardCmd(g *clientFlags) *cobra.Command {
	var address string
	cmd := &cobra.Command{
		Use:   "forward ID LOCAL:REMOTE [LOCAL:REMOTE...]",
		Short: "Forward local TCP ports to ports inside a task or VPS",
		Long: `Forward local TCP ports to ports inside a running task or VPS, without
publishing any Docker port. Each LOCAL:REMOTE listens on LOCAL (0 picks a
free port) on --address (127.0.0.1 unless given) and carries every
connection accepted there through a host replica (the first of --host
that answers) and the task's runner to port REMOTE inside the task: the
container's own address for a Docker task or VPS, 127.0.0.1 on the
runner's machine for a native task. The leader plays no part: an open
connection keeps working, and new ones open, while the leader changes.

Only the task's owner or an operator may forward; every connection is
recorded in the audit log (who, task, port, when, how long).

It prints the local URL of each port (with --output json: the mapping
as JSON) once every port listens, and runs until interrupted.`,
		Example: `  hakuriver forward 1234 8888:8888            # Jupyter in task 1234
  hakuriver forward 1234 0:6006 0:8080 -o json # two free local ports`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var maps []portMapping
			for _, a := range args[1:] {
				m, err := parsePortMapping(a)
				if err != nil {
					return err
				}
				maps = append(maps, m)
			}
			if net.ParseIP(address) == nil {
				return fmt.Errorf("--address %q: want an IP address", address)
			}
			f, err := newForwarder(cmd.Context(), g, args[0])
			if err != nil {
				return err
			}
			for _, m := range maps {
				if err := f.check(cmd.Context(), m.Remote); err != nil {
					return err
				}
			}
			return f.serve(cmd, address, maps)
		},
	}
	cmd.Flags().StringVar(&address, "address", "127.0.0.1", "local address to listen on (0.0.0.0 lets other machines in)")
	return cmd
}

// forwarder carries the connections of one `hakuriver forward`.
type forwarder struct {
	g      *clientFlags
	taskID string
	hosts  []string
	dialer api.StreamDialer
	format string
}

func newForwarder(ctx context.Context, g *clientFlags, ref string) (*forwarder, error) {
	format, err := g.format()
	if err != nil {
		return nil, err
	}
	id, err := resolveTaskID(ctx, g, ref)
	if err != nil {
		return nil, err
	}
	cfg, err := g.clientConfig("")
	if err != nil {
		return nil, err
	}
	hosts, err := api.ParseHosts(cfg.Hosts...)
	if err != nil {
		return nil, fmt.Errorf("invalid --host: %w", err)
	}
	// One session ID for every stream: the replicas record them as one
	// session in the audit log.
	session := http.Header{api.SessionHeader: {api.NewRequestID()}}
	return &forwarder{g: g, taskID: id, hosts: hosts, format: format,
		dialer: api.StreamDialer{TLS: cfg.TLS, Bearer: cfg.Bearer, DialTimeout: cfg.DialTimeout, Header: session}}, nil
}

// resolveTaskID turns a task ID or name into a task ID. A number is
// taken as it is: the replica that serves the stream checks it (and asks
// the leader when it has not seen the task yet).
func resolveTaskID(ctx context.Context, g *clientFlags, ref string) (string, error) {
	if n, err := strconv.ParseInt(ref, 10, 64); err == nil && n > 0 && ref[0] != '+' {
		return ref, nil
	}
	c, err := g.client()
	if err != nil {
		return "", err
	}
	defer c.Close()
	cctx, cancel := g.call(ctx)
	defer cancel()
	r, err := resolveRef(cctx, c, ref, false)
	if err != nil {
		return "", err
	}
	if r.batch {
		return "", fmt.Errorf("%s is a batch: name one task", ref)
	}
	return r.id, nil
}

func (f *forwarder) path(port int, check bool) string {
	p := "/api/task/" + url.PathEscape(f.taskID) + "/forward?port=" + strconv.Itoa(port)
	if check {
		p += "&check=1"
	}
	return p
}

// check asks the replicas whether the caller may forward port of the task
// (the owner or an operator, the task running) before anything listens.
func (f *forwarder) check(ctx context.Context, port int) error {
	c, err := f.g.client()
	if err != nil {
		return err
	}
	defer c.Close()
	cctx, cancel := f.g.call(ctx)
	defer cancel()
	if _, err := c.Do(cctx, http.MethodGet, f.path(port, true), nil, nil); err != nil {
		return fmt.Errorf("forward port %d of task %s: %w", port, f.taskID, err)
	}
	return nil
}

// serve listens on every mapping and relays connections until the
// command's context ends.
func (f *forwarder) serve(cmd *cobra.Command, address string, maps []portMapping) error {
	ctx := cmd.Context()
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	out := forwardListing{TaskID: f.taskID}
	for _, m := range maps {
		ln, err := net.Listen("tcp", net.JoinHostPort(address, strconv.Itoa(m.Local)))
		if err != nil {
			return fmt.Errorf("listen for port %d: %w", m.Remote, err)
		}
		lns = append(lns, ln)
		port := ln.Addr().(*net.TCPAddr).Port
		out.Forwards = append(out.Forwards, forwardEntry{Address: address, LocalPort: port, RemotePort: m.Remote,
			URL: "http://" + net.JoinHostPort(address, strconv.Itoa(port))})
	}
	if f.format == outputJSON {
		if err := printJSON(cmd.OutOrStdout(), out); err != nil {
			return err
		}
	} else {
		for _, e := range out.Forwards {
			fmt.Fprintf(cmd.OutOrStdout(), "Forwarding %s -> task %s port %d\n", e.URL, f.taskID, e.RemotePort)
		}
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	for i, ln := range lns {
		remote := out.Forwards[i].RemotePort
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.accept(ctx, ln, remote, &wg)
		}()
	}
	<-ctx.Done()
	for _, ln := range lns {
		ln.Close()
	}
	return nil
}

// accept relays every connection of ln to remote until ln closes.
func (f *forwarder) accept(ctx context.Context, ln net.Listener, remote int, wg *sync.WaitGroup) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			stop := context.AfterFunc(ctx, func() { conn.Close() })
			defer stop()
			stream, err := f.open(ctx, remote)
			if err != nil {
				fmt.Fprintf(os.Stderr, "forward to port %d of task %s: %v\n", remote, f.taskID, err)
				conn.Close()
				return
			}
			stopStream := context.AfterFunc(ctx, func() { stream.Close() })
			defer stopStream()
			api.Pipe(conn, stream)
		}()
	}
}

// open opens a stream to remote through the first replica that takes it:
// an unreachable or unavailable (5xx) replica is skipped, a refusal (4xx)
// is final.
func (f *forwarder) open(ctx context.Context, remote int) (net.Conn, error) {
	var last error
	for _, h := range f.hosts {
		conn, err := f.dialer.DialStream(ctx, h, f.path(remote, false))
		if err == nil {
			return conn, nil
		}
		last = err
		var ae *api.APIError
		if errors.As(err, &ae) && ae.StatusCode < 500 {
			return nil, err
		}
	}
	return nil, fmt.Errorf("%w: %w", api.ErrNoReplica, last)
}
