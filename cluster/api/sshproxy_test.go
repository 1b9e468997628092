package api_test

import (
	"errors"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
)

func TestClusterStatus_SSHProxies(t *testing.T) {
	for _, tc := range []struct {
		name string
		st   api.ClusterStatus
		url  string
		want []string
	}{{
		name: "own first, then the others in order",
		st: api.ClusterStatus{NodeID: "h2", Replicas: []api.Replica{
			{ID: "h1", API: "http://10.0.0.1:8000", SSHProxy: "10.0.0.1:8002"},
			{ID: "h2", API: "http://10.0.0.2:8000", SSHProxy: "10.0.0.2:8002"},
			{ID: "h3", API: "http://10.0.0.3:8000", SSHProxy: "10.0.0.3:8002"},
		}},
		url:  "http://10.0.0.2:8000",
		want: []string{"10.0.0.2:8002", "10.0.0.1:8002", "10.0.0.3:8002"},
	}, {
		name: "unspecified own host becomes the host the client used",
		st: api.ClusterStatus{NodeID: "h1", Replicas: []api.Replica{
			{ID: "h1", API: "http://0.0.0.0:8000", SSHProxy: "0.0.0.0:8100"},
			{ID: "h2", API: "http://0.0.0.0:8001", SSHProxy: "[::]:8101"},
			{ID: "h3", API: "http://lab3:8000", SSHProxy: ":8102"},
		}},
		url:  "http://gw.lab:8000",
		want: []string{"gw.lab:8100", "gw.lab:8101", "lab3:8102"},
	}, {
		name: "unspecified own host, the listed API host is not used for it",
		st: api.ClusterStatus{NodeID: "h1", Replicas: []api.Replica{
			{ID: "h1", API: "http://192.168.1.1:8000", SSHProxy: "0.0.0.0:8100"},
		}},
		url:  "http://[::1]:8000",
		want: []string{"[::1]:8100"},
	}, {
		name: "no proxy, malformed and duplicate addresses are skipped",
		st: api.ClusterStatus{NodeID: "h3", Replicas: []api.Replica{
			{ID: "h1", API: "http://10.0.0.1:8000", SSHProxy: ""},
			{ID: "h2", API: "http://10.0.0.2:8000", SSHProxy: "10.0.0.2"},
			{ID: "h3", API: "http://10.0.0.3:8000", SSHProxy: "10.0.0.3:0"},
			{ID: "h4", API: "http://10.0.0.4:8000", SSHProxy: "10.0.0.4:8002"},
			{ID: "h5", API: "http://10.0.0.4:8001", SSHProxy: "10.0.0.4:8002"},
		}},
		url:  "http://10.0.0.3:8000",
		want: []string{"10.0.0.4:8002"},
	}, {
		name: "answering replica not in the configuration",
		st: api.ClusterStatus{NodeID: "new", Replicas: []api.Replica{
			{ID: "h1", API: "http://10.0.0.1:8000", SSHProxy: "10.0.0.1:8002"},
		}},
		url:  "http://10.0.0.9:8000",
		want: []string{"10.0.0.1:8002"},
	}, {
		name: "nothing listed",
		st:   api.ClusterStatus{NodeID: "h1", Replicas: []api.Replica{{ID: "h1", API: "http://10.0.0.1:8000"}}},
		url:  "http://10.0.0.1:8000",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.st.SSHProxies(tc.url); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("SSHProxies = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSSHProxyAddrs(t *testing.T) {
	got, err := api.SSHProxyAddrs([]string{"http://10.0.0.1:8000, http://10.0.0.2:8000", "http://10.0.0.1:9000", "https://[::1]:8000"}, 8002)
	if want := []string{"10.0.0.1:8002", "10.0.0.2:8002", "[::1]:8002"}; err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("SSHProxyAddrs = %q, %v; want %q", got, err, want)
	}
	if _, err := api.SSHProxyAddrs([]string{"ftp://x"}, 8002); err == nil {
		t.Fatal("a malformed host was accepted")
	}
}

// TestFindSSHProxies: an unreachable replica and one that lists no proxy
// pass the question on; when nobody names one the error says why for each.
func TestFindSSHProxies(t *testing.T) {
	var withProxy atomic.Bool
	srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		st := api.ClusterStatus{NodeID: "h1", Replicas: []api.Replica{{ID: "h1", API: "http://10.0.0.1:8000"}}}
		if withProxy.Load() {
			st.Replicas[0].SSHProxy = "0.0.0.0:8002"
		}
		writeJSON(w, http.StatusOK, st)
	})
	cfg := api.DefaultClientConfig()
	cfg.Hosts = []string{"http://" + deadHost(t), srv.srv.URL}
	_, err := api.FindSSHProxies(ctxT(t), cfg)
	if !errors.Is(err, api.ErrNoSSHProxy) || !strings.Contains(err.Error(), `replica "h1" lists no SSH proxy`) || !strings.Contains(err.Error(), cfg.Hosts[0]) {
		t.Fatalf("no proxy listed: %v", err)
	}
	withProxy.Store(true)
	got, err := api.FindSSHProxies(ctxT(t), cfg)
	if want := []string{"127.0.0.1:8002"}; err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("FindSSHProxies = %q, %v; want %q (the host the answer came from)", got, err, want)
	}
}
