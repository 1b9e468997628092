//go:build integration

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// The "access" section: `hakuriver forward` throughput against a direct
// loopback connection, and `hakuriver cp` throughput, through a follower
// of 3 replicas and a native runner. The task's port is served by this
// process (a native task's ports are the runner host's), so both paths
// end at the same sink and source.

// accessBudget bounds one transfer.
const accessBudget = 5 * time.Minute

// accessResult gathers the access measurements.
type accessResult struct {
	bytes                int64
	via                  string
	directUp, forwardUp  time.Duration
	directDn, forwardDn  time.Duration
	relayUp, relayDn     time.Duration // through 3 bare relays in this process
	cpTo, cpFrom, cpDisk time.Duration
	cpBytes              int64
	firstErr             string
}

func (r *accessResult) fail(format string, args ...any) {
	if r.firstErr == "" {
		r.firstErr = fmt.Sprintf(format, args...)
	}
}

func accessSection(out io.Writer, root *scope, bin string, s settings) {
	printAccess(out, accessBench(root, bin, s))
}

// accessBench measures forward and cp throughput; 256 MiB per transfer
// (-quick: 64 MiB).
func accessBench(parent *scope, bin string, s settings) accessResult {
	res := accessResult{bytes: 256 << 20, cpBytes: 256 << 20}
	if s.quick {
		res.bytes, res.cpBytes = 64<<20, 64<<20
	}
	sc := parent.child("access")
	defer sc.close()
	c := startRunnerBenchCluster(sc, bin)
	c.StartRunner("ra", harness.RunnerOptions{NoDocker: true})
	f := c.Followers()[0]
	res.via = c.Replica(f).ID
	work := sc.TempDir()
	if err := os.Chmod(work, 0o777); err != nil {
		sc.Fatalf("chmod: %v", err)
	}
	null := "NULL"
	ids := c.SubmitOK(f, api.SubmitRequest{Command: "sleep", Arguments: []string{"3600"}, ContainerName: &null, Targets: []string{"ra"}, WorkDir: work})
	id := ids[0]
	sc.Cleanup(func() { c.CLI("kill", id) })
	c.WaitStatus(id, "running", time.Minute)

	sink, source := serveSink(sc), serveSource(sc, res.bytes)
	fw := c.StartCLIVia([]int{f}, 30*time.Minute, "-o", "json", "forward", id,
		fmt.Sprintf("0:%d", sink.Addr().(*net.TCPAddr).Port), fmt.Sprintf("0:%d", source.Addr().(*net.TCPAddr).Port))
	var mapping struct {
		Forwards []struct {
			LocalPort int `json:"local_port"`
		} `json:"forwards"`
	}
	if err := harness.Eventually(time.Minute, func() (bool, string) {
		return json.Unmarshal([]byte(fw.Stdout()), &mapping) == nil && len(mapping.Forwards) == 2, fw.Stdout()
	}); err != nil {
		sc.Fatalf("forward: %v", err)
	}
	// The ceiling of any design with three relays on one machine: three
	// bare TCP relays (api.Pipe) in this process, no HTTP, no checks.
	relaySink := relayChain(sc, sink.Addr().String(), 3)
	relaySource := relayChain(sc, source.Addr().String(), 3)
	fwSink := "127.0.0.1:" + strconv.Itoa(mapping.Forwards[0].LocalPort)
	fwSource := "127.0.0.1:" + strconv.Itoa(mapping.Forwards[1].LocalPort)
	// Warm up each path once, then measure direct and forwarded in turn.
	for k := range 2 {
		du, err1 := upload(sink.Addr().String(), res.bytes)
		fu, err2 := upload(fwSink, res.bytes)
		dd, err3 := download(source.Addr().String(), res.bytes)
		fd, err4 := download(fwSource, res.bytes)
		ru, err5 := upload(relaySink, res.bytes)
		rd, err6 := download(relaySource, res.bytes)
		for _, err := range []error{err1, err2, err3, err4, err5, err6} {
			if err != nil {
				res.fail("%v", err)
			}
		}
		if k == 1 {
			res.directUp, res.forwardUp, res.directDn, res.forwardDn = du, fu, dd, fd
			res.relayUp, res.relayDn = ru, rd
		}
	}

	// cp: a file into the task and back, against a local file copy.
	src := filepath.Join(sc.TempDir(), "blob")
	if err := writeZeros(src, res.cpBytes); err != nil {
		sc.Fatalf("%v", err)
	}
	t0 := time.Now()
	if err := copyLocal(src, filepath.Join(work, "local-copy")); err != nil {
		res.fail("local copy: %v", err)
	}
	res.cpDisk = time.Since(t0)
	t0 = time.Now()
	if r := c.CLIVia([]int{f}, accessBudget, "", "cp", src, id+":"+filepath.Join(work, "in")); r.Code != 0 {
		res.fail("cp to: %s", r)
	}
	res.cpTo = time.Since(t0)
	back := filepath.Join(sc.TempDir(), "back")
	t0 = time.Now()
	if r := c.CLIVia([]int{f}, accessBudget, "", "cp", id+":"+filepath.Join(work, "in"), back); r.Code != 0 {
		res.fail("cp from: %s", r)
	}
	res.cpFrom = time.Since(t0)
	if fi, err := os.Stat(back); err != nil || fi.Size() != res.cpBytes {
		res.fail("cp from: %v %v", fi, err)
	}
	return res
}

// serveSink accepts connections that it reads to their end, then answers
// "ok".
func serveSink(sc *scope) net.Listener {
	return serveTCP(sc, func(conn net.Conn) {
		io.Copy(io.Discard, conn)  //nolint:errcheck // the client reads the answer
		io.WriteString(conn, "ok") //nolint:errcheck // the client judges
	})
}

// serveSource accepts connections that it sends n zero bytes to.
func serveSource(sc *scope, n int64) net.Listener {
	return serveTCP(sc, func(conn net.Conn) {
		io.Copy(conn, io.LimitReader(zeros{}, n)) //nolint:errcheck // the client counts
	})
}

// serveTCP listens on a loopback port until sc ends and serves each
// connection with serve, then closes it.
func serveTCP(sc *scope, serve func(net.Conn)) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		sc.Fatalf("listen: %v", err)
	}
	sc.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				serve(conn)
			}()
		}
	}()
	return ln
}

// relayChain starts n chained TCP relays in front of to and returns the
// first one's address.
func relayChain(sc *scope, to string, n int) string {
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			sc.Fatalf("listen: %v", err)
		}
		sc.Cleanup(func() { ln.Close() })
		next := to
		go func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					d, err := net.DialTimeout("tcp", next, 10*time.Second)
					if err != nil {
						conn.Close()
						return
					}
					api.Pipe(conn, d)
				}()
			}
		}()
		to = ln.Addr().String()
	}
	return to
}

// upload sends n bytes to addr, half-closes, and waits for "ok".
func upload(addr string, n int64) (time.Duration, error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(accessBudget)) //nolint:errcheck // bounded in any case
	t0 := time.Now()
	if _, err := io.Copy(conn, io.LimitReader(zeros{}, n)); err != nil {
		return 0, fmt.Errorf("upload to %s: %w", addr, err)
	}
	conn.(*net.TCPConn).CloseWrite() //nolint:errcheck // the answer tells
	b, err := io.ReadAll(conn)
	if err != nil || string(b) != "ok" {
		return 0, fmt.Errorf("upload to %s: answer %q, %v", addr, b, err)
	}
	return time.Since(t0), nil
}

// download reads addr to its end, which must be n bytes.
func download(addr string, n int64) (time.Duration, error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(accessBudget)) //nolint:errcheck // bounded in any case
	t0 := time.Now()
	got, err := io.Copy(io.Discard, conn)
	if err != nil || got != n {
		return 0, fmt.Errorf("download from %s: %d of %d bytes, %v", addr, got, n, err)
	}
	return time.Since(t0), nil
}

func writeZeros(path string, n int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, io.LimitReader(zeros{}, n)); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func copyLocal(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// rate formats n bytes over d in MiB/s.
func rate(n int64, d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", mibps(n, d))
}

func fwdRatio(direct, fwd time.Duration) string {
	if direct <= 0 || fwd <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f×", direct.Seconds()/fwd.Seconds())
}

func printAccess(out io.Writer, r accessResult) {
	fmt.Fprintf(out, "Task access through follower %s: forward (%s MiB per transfer) vs a direct loopback connection, cp (%s MiB file)\n",
		r.via, mib(r.bytes), mib(r.cpBytes))
	tw := table(out)
	fmt.Fprintln(tw, "path\tdirect MiB/s\tforward MiB/s\tforward/direct\t3 bare relays MiB/s\tbare/direct\t")
	fmt.Fprintf(tw, "upload (client → task)\t%s\t%s\t%s\t%s\t%s\t\n", rate(r.bytes, r.directUp), rate(r.bytes, r.forwardUp), fwdRatio(r.directUp, r.forwardUp),
		rate(r.bytes, r.relayUp), fwdRatio(r.directUp, r.relayUp))
	fmt.Fprintf(tw, "download (task → client)\t%s\t%s\t%s\t%s\t%s\t\n", rate(r.bytes, r.directDn), rate(r.bytes, r.forwardDn), fwdRatio(r.directDn, r.forwardDn),
		rate(r.bytes, r.relayDn), fwdRatio(r.directDn, r.relayDn))
	tw.Flush()
	tw = table(out)
	fmt.Fprintln(tw, "copy\tMiB/s\twall\t")
	fmt.Fprintf(tw, "local file copy (baseline)\t%s\t%s\t\n", rate(r.cpBytes, r.cpDisk), ms(r.cpDisk))
	fmt.Fprintf(tw, "hakuriver cp into the task\t%s\t%s\t\n", rate(r.cpBytes, r.cpTo), ms(r.cpTo))
	fmt.Fprintf(tw, "hakuriver cp out of the task\t%s\t%s\t\n", rate(r.cpBytes, r.cpFrom), ms(r.cpFrom))
	tw.Flush()
	if r.firstErr != "" {
		fmt.Fprintf(out, "first error: %s\n", strings.TrimSpace(r.firstErr))
	}
}
