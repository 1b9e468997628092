package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPlanDevKeepsPorts: a data dir's second plan keeps every port of the
// first (Raft and gossip included), moves only the API and SSH proxy ports
// when --api-port is given again, adds runners with fresh ports, and
// refuses another replica count.
func TestPlanDevKeepsPorts(t *testing.T) {
	dir := t.TempDir()
	first, err := planDev(dir, nil, 3, 1, 18000, false, false)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]string{}
	for _, m := range first.Members {
		for _, p := range []int{m.APIPort, m.SSHProxyPort, m.RaftPort, m.GossipPort} {
			if p == 0 {
				continue
			}
			if other, dup := seen[p]; dup {
				t.Fatalf("port %d of %s is also %s's", p, m.Name, other)
			}
			seen[p] = m.Name
		}
	}
	if h := first.member("host-2"); h.APIPort != 18001 || h.SSHProxyPort != 18101 || h.RaftPort == 0 || h.GossipPort == 0 {
		t.Fatalf("host-2 = %+v", h)
	}
	again, err := planDev(dir, first, 3, 2, 19000, false, false)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range first.Members {
		if a := again.Members[i]; *a != *m {
			t.Errorf("second plan of %s = %+v, want %+v", m.Name, a, m)
		}
	}
	if r := again.member("runner-2"); r == nil || r.APIPort == 0 || seen[r.APIPort] != "" || seen[r.GossipPort] != "" {
		t.Errorf("new runner-2 = %+v", r)
	}
	moved, err := planDev(dir, first, 3, 1, 19000, true, false)
	if err != nil {
		t.Fatal(err)
	}
	if h, f := moved.member("dev-3"), first.member("host-3"); h.APIPort != 19002 || h.SSHProxyPort != 19102 || h.RaftPort != f.RaftPort || h.GossipPort != f.GossipPort {
		t.Errorf("host-3 with a new --api-port = %+v (was %+v)", h, f)
	}
	if _, err := planDev(dir, first, 1, 1, 18000, false, false); err == nil || !strings.Contains(err.Error(), "start it with --replicas 3") {
		t.Errorf("a 3-replica data dir planned with 1 replica: %v", err)
	}
}

// TestControlPathPrivate: a data dir too long for a Unix socket puts the
// control socket in the user's own 0700 cache directory, never in the
// shared temp dir where another user could take the name first.
func TestControlPathPrivate(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	short := t.TempDir()
	if p := controlPath(short); p != filepath.Join(short, "dev.sock") {
		t.Fatalf("short data dir: %s", p)
	}
	long := filepath.Join(short, strings.Repeat("d", 120))
	p := controlPath(long)
	if filepath.Dir(p) != filepath.Join(cache, "hakuriver") {
		t.Fatalf("long data dir: socket at %s, want it in %s", p, filepath.Join(cache, "hakuriver"))
	}
	if fi, err := os.Stat(filepath.Dir(p)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("socket directory: %v %v, want mode 0700", fi.Mode(), err)
	}
	if p2 := controlPath(long); p2 != p {
		t.Fatalf("not stable: %s then %s", p, p2)
	}
}
