package main

import (
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/sshproxy/sshtest"
)

// countingListener accepts connections, counts them and closes them at
// once: a port where something listens but no proxy answers.
func countingListener(t *testing.T) (port int, count func() int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	n := make(chan int, 1)
	n <- 0
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n <- <-n + 1
			c.Close()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port, func() int { v := <-n; n <- v; return v }
}

// TestSSH_FindsProxyFromCluster runs "hakuriver ssh --proxy-command"
// without --proxy-port against a fake replica whose GET /api/cluster lists
// the proxies: its own (unspecified host, or a port where no proxy
// answers) is tried first, then the next one.
func TestSSH_FindsProxyFromCluster(t *testing.T) {
	proxy := strconv.Itoa(sshTestProxy(t, sshtest.EchoServer(t), ""))
	dead, tries := countingListener(t)
	f := newFakeHost(t)
	var mu sync.Mutex
	var replicas []api.Replica
	f.mux.HandleFunc("GET /api/cluster", func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		reply(w, http.StatusOK, api.ClusterStatus{NodeID: "h2", Replicas: replicas})
	})
	list := func(r ...api.Replica) {
		mu.Lock()
		defer mu.Unlock()
		replicas = r
	}
	ping := func(t *testing.T, hosts string) (string, error) {
		t.Helper()
		out, _, err := runSSHCLI(t, strings.NewReader("ping\n"), "--host", hosts, "--token", aliceToken, "ssh", "--proxy-command", "7")
		return out, err
	}

	// The answering replica's own proxy, on an unspecified address (which
	// api.ClusterStatus.SSHProxies replaces with the API URL's host; TestClusterStatus_SSHProxies
	// checks that), is tried first: the other replica's is never tried.
	list(
		api.Replica{ID: "h1", API: "http://127.0.0.1:1", SSHProxy: "127.0.0.1:" + strconv.Itoa(dead)},
		api.Replica{ID: "h2", API: f.srv.URL, SSHProxy: "[::]:" + proxy},
	)
	if out, err := ping(t, f.srv.URL); err != nil || out != "ping\n" {
		t.Fatalf("own proxy on [::]: %q, %v", out, err)
	}
	if n := tries(); n != 0 {
		t.Errorf("another replica's proxy was tried %d times before the answering replica's own", n)
	}

	// The own proxy does not answer: the next one listed is used.
	list(
		api.Replica{ID: "h1", API: "http://127.0.0.1:1", SSHProxy: "127.0.0.1:" + proxy},
		api.Replica{ID: "h2", API: f.srv.URL, SSHProxy: "0.0.0.0:" + strconv.Itoa(dead)},
	)
	if out, err := ping(t, f.srv.URL); err != nil || out != "ping\n" {
		t.Fatalf("fallback to the next proxy: %q, %v", out, err)
	}
	if n := tries(); n != 1 {
		t.Errorf("the answering replica's own proxy was tried %d times, want 1 (first)", n)
	}

	// An unreachable --host replica is passed over for the next one.
	unreachable := "http://127.0.0.1:" + strconv.Itoa(sshtest.ClosedPort(t))
	if out, err := ping(t, unreachable+","+f.srv.URL); err != nil || out != "ping\n" {
		t.Fatalf("first --host unreachable: %q, %v", out, err)
	}

	// No replica lists a proxy: a clear error that names --proxy-port.
	list(api.Replica{ID: "h2", API: f.srv.URL})
	_, err := ping(t, f.srv.URL)
	if err == nil || !strings.Contains(err.Error(), "lists no SSH proxy") || !strings.Contains(err.Error(), "--proxy-port") {
		t.Fatalf("no proxy listed: %v", err)
	}
	_, err = ping(t, unreachable)
	if err == nil || !strings.Contains(err.Error(), "find the SSH proxy") || !strings.Contains(err.Error(), "--proxy-port") {
		t.Fatalf("no replica answers: %v", err)
	}

	// Every listed proxy is down.
	list(api.Replica{ID: "h2", API: f.srv.URL, SSHProxy: "127.0.0.1:" + strconv.Itoa(dead)})
	_, err = ping(t, f.srv.URL)
	if err == nil || !strings.Contains(err.Error(), "no SSH proxy reachable") {
		t.Fatalf("every proxy down: %v", err)
	}
}
