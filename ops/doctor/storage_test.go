package doctor

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
)

func TestStorageProbeRoundTrip(t *testing.T) {
	shared, other := t.TempDir(), t.TempDir()
	p, err := WriteProbe(shared)
	if err != nil {
		t.Fatal(err)
	}
	if !isProbeName(p.Name) || len(p.Token) != 32 {
		t.Fatalf("probe = %+v", p)
	}
	// A second view of the same storage (a symlink stands in for another
	// node's mount point) reads it back.
	mount := filepath.Join(t.TempDir(), "mnt")
	if err := os.Symlink(shared, mount); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, dir, file, token string
		status                 Status
		want                   string
	}{
		{"same storage", mount, p.Name, p.Token, StatusOK, "read back"},
		{"different storage", other, p.Name, p.Token, StatusFail, "probe file not found"},
		{"different token", shared, p.Name, strings.Repeat("0", 32), StatusFail, "different token"},
		{"not a probe name", shared, "../etc/passwd", p.Token, StatusFail, "not a doctor probe"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ReadProbe(tt.dir, tt.file, tt.token)
			if c.Status != tt.status || !strings.Contains(c.Measured, tt.want) || c.Name != "shared storage" {
				t.Fatalf("ReadProbe = %+v, want %s ~%q", c, tt.status, tt.want)
			}
		})
	}
	if c := ReadProbe(other, p.Name, p.Token); !strings.Contains(c.Cause, "not the same storage") {
		t.Fatalf("cause = %q", c.Cause)
	}
}

func TestWriteProbeRemovesStaleProbes(t *testing.T) {
	dir := t.TempDir()
	old, err := WriteProbe(dir)
	if err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Hour)
	if err := os.Chtimes(filepath.Join(dir, old.Name), past, past); err != nil {
		t.Fatal(err)
	}
	keep := filepath.Join(dir, "user-data")
	os.WriteFile(keep, []byte("x"), 0o644) //nolint:errcheck // checked below
	fresh, err := WriteProbe(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, old.Name)); !os.IsNotExist(err) {
		t.Fatalf("stale probe kept: %v", err)
	}
	for _, f := range []string{keep, filepath.Join(dir, fresh.Name)} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("%s removed: %v", f, err)
		}
	}
	if _, err := WriteProbe(filepath.Join(dir, "user-data")); err == nil {
		t.Fatal("WriteProbe into a file succeeded")
	}
}

func TestParseRequest(t *testing.T) {
	q := url.Values{}
	q.Set("probe_file", ".hakuriver-doctor-"+strings.Repeat("ab", 16))
	q.Set("probe_token", "tok")
	q.Set("timeout_ms", "250")
	q.Add("target", "tcp,raft h2,127.0.0.1:8300")
	q.Add("target", "http,host api h2,http://127.0.0.1:8000/api/doctor?ping=1")
	r := httptest.NewRequest(http.MethodGet, "/api/doctor?"+q.Encode(), nil)
	req, err := ParseRequest(httptest.NewRecorder(), r)
	if err != nil {
		t.Fatal(err)
	}
	if req.ReadProbe == nil || req.ReadProbe.Token != "tok" || req.Timeout() != 250*time.Millisecond || len(req.Targets) != 2 ||
		req.Targets[1].Address != "http://127.0.0.1:8000/api/doctor?ping=1" || req.Targets[0].Name != "raft h2" {
		t.Fatalf("GET request = %+v", req)
	}

	body := `{"targets":[{"name":"x","kind":"udp-gossip","address":"127.0.0.1:7946"}],"write_probe":true}`
	r = httptest.NewRequest(http.MethodPost, "/doctor", strings.NewReader(body))
	if req, err = ParseRequest(httptest.NewRecorder(), r); err != nil || !req.WriteProbe || req.Targets[0].Kind != KindUDPGossip {
		t.Fatalf("POST request = %+v, %v", req, err)
	}

	for _, bad := range []struct{ method, target, body, want string }{
		{http.MethodGet, "/doctor?target=icmp,x,1.2.3.4:1", "", "targets[0].kind"},
		{http.MethodGet, "/doctor?target=tcp", "", "kind,name,address"},
		{http.MethodGet, "/doctor?timeout_ms=99999999", "", "timeout_ms"},
		{http.MethodGet, "/doctor?probe_file=../x", "", "read_probe.name"},
		{http.MethodPost, "/doctor", "{", "malformed"},
		{http.MethodDelete, "/doctor", "", "method"},
	} {
		r := httptest.NewRequest(bad.method, bad.target, strings.NewReader(bad.body))
		if _, err := ParseRequest(httptest.NewRecorder(), r); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s %s: err = %v, want ~%q", bad.method, bad.target, err, bad.want)
		}
	}
}

func TestRun(t *testing.T) {
	shared := t.TempDir()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(api.TokenHeader) != "member-token" {
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	t.Cleanup(api.Close)
	l := Local{AdvertiseAddr: "127.0.0.1", InterfaceAddrs: fakeAddrs, LookupHost: fakeLookup, Token: "member-token",
		Paths: []Path{{Name: "shared_dir", Path: shared, Dir: true, Write: true}}}
	base := Report{Node: "h1", Role: "host", Version: "1.0", SharedDir: shared,
		Checks: []Check{{Name: "raft", Status: StatusOK, Measured: "leader", Cause: "dropped for ok"}}}

	rep := Run(context.Background(), l, Request{WriteProbe: true, Targets: []Target{{Name: "api h2", Kind: KindHTTP, Address: api.URL}}}, base)
	if rep.Probe == nil || rep.Probe.Writer != "h1" || rep.Time.IsZero() || rep.ElapsedMS <= 0 {
		t.Fatalf("report = %+v", rep)
	}
	byName := map[string]Check{}
	for _, c := range rep.Checks {
		if c.Node != "h1" {
			t.Fatalf("check without node: %+v", c)
		}
		if c.Status == StatusOK && c.Cause != "" {
			t.Fatalf("ok check with a cause: %+v", c)
		}
		byName[c.Name] = c
	}
	for _, name := range []string{"process user", "advertise address", "path shared_dir", "raft", "probe api h2", "shared storage write"} {
		if byName[name].Status != StatusOK {
			t.Fatalf("%s = %+v (all: %+v)", name, byName[name], rep.Checks)
		}
	}

	// Another member reads the probe back; a ping answers only the identity.
	rep2 := Run(context.Background(), l, Request{ReadProbe: rep.Probe}, Report{Node: "r1", SharedDir: shared})
	if c := rep2.Checks[len(rep2.Checks)-1]; c.Name != "shared storage" || c.Status != StatusOK || !strings.Contains(c.Measured, "written by h1") {
		t.Fatalf("read back = %+v", c)
	}
	ping := Run(context.Background(), l, Request{Ping: true}, Report{Node: "r1"})
	if len(ping.Checks) != 0 || ping.Checks == nil || ping.Time.IsZero() {
		t.Fatalf("ping = %+v", ping)
	}
	// The fake resolver does not know this machine's hostname: a warning.
	if w := Worst(rep.Checks); w == StatusFail {
		t.Fatalf("worst = %s: %+v", w, rep.Checks)
	}
	if w := Worst([]Check{{Status: StatusOK}, {Status: StatusFail}, {Status: StatusWarn}}); w != StatusFail {
		t.Fatalf("worst = %s", w)
	}
	var s Summary
	s.Add(Check{Status: StatusOK}, Check{Status: StatusWarn}, Check{Status: StatusFail}, Check{Status: StatusFail})
	if s.String() != "1 ok, 1 warn, 2 fail" {
		t.Fatalf("summary = %s", s)
	}
}
