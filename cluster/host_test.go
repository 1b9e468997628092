package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// testLogger sends logs to t.Log when -v is given.
func testLogger(t testing.TB) *slog.Logger {
	// A fuzz target's F may not log while the target runs (testing panics,
	// and the panic in a handler closes the client's connection): a
	// cluster started for fuzzing logs nowhere.
	if _, fuzzing := t.(*testing.F); fuzzing || !testing.Verbose() {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimSpace(p)))
	return len(p), nil
}

// startCluster starts n in-process replicas on loopback that bootstrap
// through gossip.
func startCluster(t testing.TB, n int) []*Host {
	t.Helper()
	return startClusterWith(t, n, nil)
}

// startClusterWith is startCluster with a hook that adjusts replica i's
// config before it starts.
func startClusterWith(t testing.TB, n int, adjust func(i int, cfg *Config)) []*Host {
	t.Helper()
	var hosts []*Host
	var seed string
	for i := 0; i < n; i++ {
		cfg := DefaultConfig()
		cfg.NodeID = fmt.Sprintf("h%d", i+1)
		cfg.DataDir = t.TempDir()
		cfg.SharedDir = t.TempDir()
		cfg.APIPort, cfg.RaftPort, cfg.GossipPort = 0, 0, 0
		cfg.BootstrapExpect = n
		cfg.FastGossip = true
		cfg.ClusterToken = testToken
		// Callers without a token act as operators here: these tests are
		// about other things; auth_test.go tests the accounts.
		cfg.AnonymousRole = fsm.RoleOperator
		cfg.Logger = testLogger(t).With("node", cfg.NodeID)
		if seed != "" {
			cfg.Join = []string{seed}
		}
		if adjust != nil {
			adjust(i, &cfg)
		}
		h, err := StartHost(context.Background(), cfg)
		if err != nil {
			t.Fatalf("start %s: %v", cfg.NodeID, err)
		}
		if seed == "" {
			seed = h.GossipAddr()
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			h.Close(ctx)
		})
		hosts = append(hosts, h)
	}
	waitFor(t, 15*time.Second, func() bool {
		for _, h := range hosts {
			if h.IsLeader() {
				return true
			}
		}
		return false
	})
	return hosts
}

func waitFor(t testing.TB, d time.Duration, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if f() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("condition not met within %s", d)
}

// testToken is the cluster token of the replicas the tests start.
const testToken = "test-cluster-token"

// do sends one request with the cluster token, as a runner or an
// administrator does, and returns the answer and its body.
func do(t *testing.T, method, url string, body any) (*http.Response, []byte) {
	t.Helper()
	return doToken(t, method, url, testToken, body)
}

// doToken is do with token in the token header ("" = none).
func doToken(t *testing.T, method, url, token string, body any) (*http.Response, []byte) {
	t.Helper()
	if token == testToken && !clusterTokenRoute(url) {
		token = "" // the cluster token is for internal routes only
	}
	hdr := http.Header{}
	if token != "" {
		hdr.Set(api.TokenHeader, token)
	}
	return doHeader(t, method, url, hdr, body)
}

// doBearer sends one request with an account's API token ("" sends none:
// an anonymous caller).
func doBearer(t *testing.T, method, url, token string, body any) (*http.Response, []byte) {
	t.Helper()
	hdr := http.Header{}
	if token != "" {
		hdr.Set("Authorization", "Bearer "+token)
	}
	return doHeader(t, method, url, hdr, body)
}

// doHeader sends one request with the given headers and body (a string is
// sent as is, anything else as JSON) and returns the answer and its body.
func doHeader(t *testing.T, method, url string, hdr http.Header, body any) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if s, ok := body.(string); ok {
		rd = bytes.NewBufferString(s)
	} else if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func TestThreeReplicasSubmitThroughFollower(t *testing.T) {
	hosts := startCluster(t, 3)
	var follower *Host
	for _, h := range hosts {
		if !h.IsLeader() {
			follower = h
		}
	}
	resp, body := do(t, "POST", follower.APIURL()+"/api/submit", api.SubmitRequest{Command: "echo", Arguments: []string{"hi"}})
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("submit via follower: %d %s", resp.StatusCode, body)
	}
	if resp.Header.Get(api.LeaderHeader) == "" {
		t.Errorf("no %s header", api.LeaderHeader)
	}
	var sr api.SubmitResponse
	json.Unmarshal(body, &sr)
	if len(sr.TaskIDs) != 1 {
		t.Fatalf("task ids: %v", sr.TaskIDs)
	}
	id := sr.TaskIDs[0]
	// Every replica eventually serves it from its local FSM, pending.
	for _, h := range hosts {
		waitFor(t, 5*time.Second, func() bool {
			resp, body := do(t, "GET", h.APIURL()+"/status/"+id, nil)
			return resp.StatusCode == 200 && bytes.Contains(body, []byte(`"status":"pending"`))
		})
	}
	st := follower.Status()
	if len(st.Replicas) != 3 || st.LeaderID == "" || st.LeaderAPI == "" {
		t.Fatalf("cluster status: %+v", st)
	}
}

func formatID(id int64) string { return fmt.Sprintf("%d", id) }

// clusterTokenRoute reports whether url is a route that takes the cluster
// token (the internal and membership calls, doctor, bootstrap).
func clusterTokenRoute(url string) bool {
	for _, p := range []string{"/register", "/heartbeat/", "/update", "/internal/", "/cluster/join", "/cluster/peers/",
		"/cluster/leadership-transfer", "/doctor", "/auth/bootstrap", "/cluster/prove", "/metrics"} {
		if strings.Contains(url, p) {
			return true
		}
	}
	return false
}

// applyOnLeader applies c on whichever replica leads, retrying through
// leader changes (a loaded machine loses leaders): c must be idempotent
// (a SubmitTasks needs a RequestID). It returns the replica that applied
// it.
func applyOnLeader(t *testing.T, hosts []*Host, c fsm.Command) *Host {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		l := leaderOf(t, hosts)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := l.apply(ctx, c)
		cancel()
		if err == nil {
			return l
		}
		if !errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrNoLeader) || time.Now().After(deadline) {
			t.Fatalf("apply %T: %v", c, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
