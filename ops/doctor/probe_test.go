package doctor

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
)

// closedPort returns a loopback TCP port nobody listens on (it was free a
// moment ago).
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// closedUDPPort is closedPort for UDP.
func closedUDPPort(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := c.LocalAddr().String()
	c.Close()
	return addr
}

// silentListener accepts connections and never answers on them: a hung
// process, or a middlebox that swallows the traffic.
func silentListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() { ln.Close(); close(done) })
	return ln.Addr().String()
}

func TestProbeClassification(t *testing.T) {
	const token = "right-token"
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(api.TokenHeader) != token {
			http.Error(w, `{"error":"missing or wrong cluster token"}`, http.StatusUnauthorized)
			return
		}
		w.Write([]byte(`{}`))
	}))
	t.Cleanup(api.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { udp.Close() })
	silent := silentListener(t)

	tests := []struct {
		name      string
		target    Target
		timeout   time.Duration
		status    Status
		measured  string // substring of Measured
		cause     string // substring of Cause
		wantCause bool
	}{
		{"tcp open", Target{Name: "t", Kind: KindTCP, Address: ln.Addr().String()}, time.Second, StatusOK, "connect 127.0.0.1:", "", false},
		{"tcp refused", Target{Name: "t", Kind: KindTCP, Address: closedPort(t)}, time.Second, StatusFail, "refused", "nothing listening or a REJECT rule", true},
		{"http ok", Target{Name: "t", Kind: KindHTTP, Address: api.URL + "/ping", Token: token}, time.Second, StatusOK, "HTTP 200", "", false},
		{"http wrong token", Target{Name: "t", Kind: KindHTTP, Address: api.URL + "/ping", Token: "wrong"}, time.Second, StatusFail, "HTTP 401", "cluster token mismatch", true},
		{"http refused", Target{Name: "t", Kind: KindHTTP, Address: "http://" + closedPort(t) + "/"}, time.Second, StatusFail, "refused", "REJECT", true},
		{"http never answers", Target{Name: "t", Kind: KindHTTP, Address: "http://" + silent + "/"}, 300 * time.Millisecond, StatusFail, "timeout", "DROP rule", true},
		// An empty label makes the resolver reject the name without asking
		// any DNS server: "name does not resolve", offline.
		{"dns failure", Target{Name: "t", Kind: KindTCP, Address: "no..such.host:80"}, time.Second, StatusFail, "name does not resolve", "does not resolve here", true},
		{"udp listening", Target{Name: "t", Kind: KindUDPGossip, Address: udp.LocalAddr().String()}, time.Second, StatusOK, "no port-unreachable", "", false},
		{"udp closed", Target{Name: "t", Kind: KindUDPGossip, Address: closedUDPPort(t)}, time.Second, StatusFail, "refused", "nothing listens for gossip", true},
		{"bad kind", Target{Name: "t", Kind: "icmp", Address: "127.0.0.1:1"}, time.Second, StatusFail, "unknown kind", "bad target", true},
		{"bad url", Target{Name: "t", Kind: KindHTTP, Address: "127.0.0.1:1"}, time.Second, StatusFail, "absolute http", "bad target", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), tt.timeout)
			defer cancel()
			start := time.Now()
			c := Probe(ctx, tt.target)
			if c.Status != tt.status || !strings.Contains(c.Measured, tt.measured) || !strings.Contains(c.Cause, tt.cause) {
				t.Fatalf("Probe = %+v, want status %s, measured ~%q, cause ~%q", c, tt.status, tt.measured, tt.cause)
			}
			if (c.Cause != "") != tt.wantCause {
				t.Fatalf("cause = %q, want one: %v", c.Cause, tt.wantCause)
			}
			if c.Name != "probe t" {
				t.Fatalf("name = %q", c.Name)
			}
			if d := time.Since(start); d > tt.timeout+10*time.Second { // a hang guard, not a speed check
				t.Fatalf("probe took %s, timeout %s", d, tt.timeout)
			}
		})
	}
}

func TestProbeAllParallelAndOrdered(t *testing.T) {
	silent := silentListener(t)
	refused := closedPort(t)
	var targets []Target
	for i := range 6 {
		targets = append(targets, Target{Name: strconv.Itoa(i), Kind: KindHTTP, Address: "http://" + silent + "/"})
	}
	targets = append(targets, Target{Name: "refused", Kind: KindTCP, Address: refused})
	start := time.Now()
	checks, _ := ProbeAll(context.Background(), targets, 2*time.Second, "tok")
	// Sequential probes would take at least 6 x 2 s; parallel ones about 2 s.
	if d := time.Since(start); d >= 12*time.Second {
		t.Fatalf("7 probes of 2s took %s: not parallel", d)
	}
	if len(checks) != len(targets) {
		t.Fatalf("%d checks for %d targets", len(checks), len(targets))
	}
	for i, c := range checks {
		if c.Name != "probe "+targets[i].Name || c.Status != StatusFail {
			t.Fatalf("check %d = %+v", i, c)
		}
	}
	if !strings.Contains(checks[6].Measured, "refused") {
		t.Fatalf("last = %+v", checks[6])
	}
}

func TestClassify(t *testing.T) {
	var d net.Dialer
	_, err := d.DialContext(context.Background(), "tcp", closedPort(t))
	if what, _ := Classify(err); what != "refused" {
		t.Fatalf("refused dial classified %q (%v)", what, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	if what, _ := Classify(ctx.Err()); what != "timeout" {
		t.Fatalf("deadline classified %q", what)
	}
	if what, _ := Classify(&net.DNSError{Err: "no such host", Name: "x", IsNotFound: true}); what != "name does not resolve" {
		t.Fatalf("dns classified %q", what)
	}
}
