//go:build integration

package integration

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/integration/harness"
	"github.com/hakuriver/hakuriver-ha/ops/doctor"
)

// doctorProbeTimeout is the --probe-timeout of the doctor runs: it bounds
// how long a dropped or hung path takes to be reported.
const doctorProbeTimeout = time.Second

// doctorReport is the JSON output of `hakuriver doctor -o json`.
type doctorReport struct {
	Members []doctor.Report `json:"members"`
	Summary doctor.Summary  `json:"summary"`
}

// checks returns every check of the report, each with its member's name.
func (r doctorReport) checks() []doctor.Check {
	var out []doctor.Check
	for _, m := range r.Members {
		for _, c := range m.Checks {
			c.Node = m.Node
			out = append(out, c)
		}
	}
	return out
}

// find returns the checks that match: node "" is any member, and name is a
// prefix of the check's name.
func (r doctorReport) find(node, name string) []doctor.Check {
	var out []doctor.Check
	for _, c := range r.checks() {
		if (node == "" || c.Node == node) && strings.HasPrefix(c.Name, name) {
			out = append(out, c)
		}
	}
	return out
}

// failures lists the checks that did not pass, for messages.
func (r doctorReport) failures() string {
	var b strings.Builder
	for _, c := range r.checks() {
		if c.Status != doctor.StatusOK {
			fmt.Fprintf(&b, "\n  %s / %s: %s: %s (%s)", c.Node, c.Name, c.Status, c.Measured, c.Cause)
		}
	}
	return b.String()
}

// runDoctor runs `hakuriver doctor -o json` against every replica with
// token and returns its exit code and report.
func runDoctor(t *testing.T, c *harness.Cluster, token string) (int, doctorReport) {
	t.Helper()
	r := c.CLIVia(nil, time.Minute, "", "-o", "json", "doctor", "--token", token,
		"--probe-timeout", doctorProbeTimeout.String())
	if r.Code < 0 {
		t.Fatalf("doctor did not finish: %s", r)
	}
	var rep doctorReport
	if err := r.Decode(&rep); err != nil {
		t.Fatalf("%v\n%s", err, r)
	}
	t.Logf("doctor: exit %d in %s: %d ok, %d warn, %d fail", r.Code, r.Elapsed.Round(time.Millisecond), rep.Summary.OK, rep.Summary.Warn, rep.Summary.Fail)
	return r.Code, rep
}

// wantFailure runs doctor and checks that it exits 1 and that a failed
// check of member node (any when "") whose name starts with name measured
// something containing measured; it returns the report.
func wantFailure(t *testing.T, c *harness.Cluster, token, node, name, measured string) doctorReport {
	t.Helper()
	code, rep := runDoctor(t, c, token)
	if code != 1 || rep.Summary.Fail == 0 {
		t.Errorf("doctor: want exit 1 with failed checks, got exit %d, %+v", code, rep.Summary)
	}
	if !hasFailure(rep, node, name, measured) {
		t.Errorf("doctor does not report %q failing with %q on %q; what did not pass:%s", name, measured, node, rep.failures())
	}
	return rep
}

// hasFailure reports whether rep holds a failed check as wantFailure
// describes it.
func hasFailure(rep doctorReport, node, name, measured string) bool {
	for _, c := range rep.find(node, name) {
		if c.Status == doctor.StatusFail && strings.Contains(c.Measured, measured) {
			return true
		}
	}
	return false
}

// TestDoctor runs `hakuriver doctor` against 3 replicas and 2 runners:
// healthy first, then with one failure injected at a time (a runner on
// another shared_dir, task_outputs that is a file, a runner advertising an
// address nothing listens on, a port dropped by a firewall rule in a
// network namespace, a wrong cluster token, a stopped replica), each of
// which the report must name.
func TestDoctor(t *testing.T) {
	c := startWithRunners(t, runnerSpec{"doc1", twoCores}, runnerSpec{"doc2", twoCores})
	t.Run("Healthy", func(t *testing.T) { testDoctorHealthy(t, c.For(t)) })
	t.Run("WrongToken", func(t *testing.T) { testDoctorWrongToken(t, c.For(t)) })
	t.Run("SharedDirElsewhere", func(t *testing.T) { testDoctorSharedDir(t, c.For(t)) })
	t.Run("RunnerAddressRefused", func(t *testing.T) { testDoctorRefused(t, c.For(t)) })
	t.Run("PortDroppedInNetns", func(t *testing.T) { testDoctorNetnsDrop(t, c.For(t)) })
	t.Run("StoppedReplica", func(t *testing.T) { testDoctorStoppedReplica(t, c.For(t)) })
}

// TestDoctorMultiAddress runs doctor against 3 replicas and 2 runners on
// five addresses of this machine (127.0.0.11-15), every member on the same
// port numbers as on machines of their own: a port held by a member on
// another address is no conflict, so the report is clean.
func TestDoctorMultiAddress(t *testing.T) {
	c := startCluster(t, harness.Options{HeartbeatInterval: hbInterval, HeartbeatTimeoutFactor: hbFactor,
		Addresses: []string{"127.0.0.11", "127.0.0.12", "127.0.0.13"}})
	c.StartRunner("doc1", harness.RunnerOptions{Cores: 2, Memory: "4G", NoDocker: true, Address: "127.0.0.14"})
	c.StartRunner("doc2", harness.RunnerOptions{Cores: 2, Memory: "4G", NoDocker: true, Address: "127.0.0.15"})
	if a, b := c.Replica(0).API, c.Replica(1).API; strings.TrimPrefix(a, "http://127.0.0.11") != strings.TrimPrefix(b, "http://127.0.0.12") {
		t.Fatalf("replicas not on one port: %s %s", a, b)
	}
	testDoctorHealthy(t, c)
}

func testDoctorHealthy(t *testing.T, c *harness.Cluster) {
	// Without Docker (outside CI) the replicas only warn about its socket.
	dockerless := harness.DockerProblem() != ""
	notOK := func(rep doctorReport) []string {
		var out []string
		for _, ch := range rep.checks() {
			if ch.Status == doctor.StatusOK || dockerless && ch.Status == doctor.StatusWarn && strings.Contains(ch.Name, "docker") {
				continue
			}
			out = append(out, fmt.Sprintf("%s / %s is %s: %s (%s)", ch.Node, ch.Name, ch.Status, ch.Measured, ch.Cause))
		}
		return out
	}
	// A loaded machine may delay a Raft heartbeat: a follower then runs a
	// pre-vote, loses it and knows no leader for a moment, which doctor
	// rightly reports. Healthy means the report comes out clean, within a
	// few runs.
	var rep doctorReport
	err := harness.Eventually(30*time.Second, func() (bool, string) {
		var code int
		code, rep = runDoctor(t, c, c.Token())
		bad := notOK(rep)
		return code == 0 && rep.Summary.Fail == 0 && len(bad) == 0, fmt.Sprintf("exit %d, %+v: %s", code, rep.Summary, strings.Join(bad, "; "))
	})
	if err != nil {
		t.Errorf("healthy cluster: want exit 0 and every check ok: %v", err)
	}
	nodes := map[string]bool{}
	for _, m := range rep.Members {
		nodes[m.Node] = true
	}
	for _, want := range []string{"cluster", "client", "h1", "h2", "h3", "doc1", "doc2"} {
		if !nodes[want] {
			t.Errorf("report has no member %s: %v", want, nodes)
		}
	}
	// Every path is probed from the side that opens it.
	for _, want := range []struct{ node, name string }{
		{"h1", "probe runner api doc1"}, {"doc2", "probe host api h3"}, {"h2", "probe raft h1"},
		{"client", "probe ssh proxy h2"}, {"doc1", "shared storage"}, {"doc2", "runner state dir"},
	} {
		if len(rep.find(want.node, want.name)) == 0 {
			t.Errorf("report lacks %q on %s", want.name, want.node)
		}
	}
	// The table form exits 0 too.
	r := c.CLIVia(nil, time.Minute, "", "doctor", "--token", c.Token(), "--probe-timeout", doctorProbeTimeout.String())
	if r.Code != 0 || !strings.Contains(r.Stdout, " 0 fail") {
		t.Errorf("doctor (table): %s", r)
	}
}

func testDoctorWrongToken(t *testing.T, c *harness.Cluster) {
	rep := wantFailure(t, c, "not-the-cluster-token", "", "reachable", "HTTP 401")
	for _, node := range []string{"h1", "h2", "h3", "doc1", "doc2"} {
		found := false
		for _, ch := range rep.find(node, "reachable") {
			found = found || ch.Status == doctor.StatusFail && strings.Contains(ch.Cause, "token mismatch")
		}
		if !found {
			t.Errorf("%s: no failed check names a token mismatch:%s", node, rep.failures())
		}
	}
}

func testDoctorSharedDir(t *testing.T, c *harness.Cluster) {
	elsewhere := t.TempDir()
	const name = "doc-elsewhere"
	c.StartRunner(name, harness.RunnerOptions{Cores: 1, Memory: "1G", NoDocker: true, Args: []string{"--shared-dir", elsewhere}})
	t.Cleanup(func() { c.KillRunner(name) })
	rep := wantFailure(t, c, c.Token(), name, "shared storage", "")
	if cl := rep.find("cluster", "shared_dir paths"); len(cl) != 1 || cl[0].Status == doctor.StatusOK || !strings.Contains(cl[0].Measured, name) {
		t.Errorf("cluster shared_dir paths: want a warning naming %s, got %+v", name, cl)
	}

	// task_outputs on that runner's shared dir becomes a regular file.
	outputs := filepath.Join(elsewhere, "task_outputs")
	if err := os.RemoveAll(outputs); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(outputs, []byte("not a directory\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rep = wantFailure(t, c, c.Token(), name, "path task_outputs", outputs)
	if hasFailure(rep, "doc1", "path task_outputs", "") {
		t.Errorf("doc1's task_outputs is fine but reported failing:%s", rep.failures())
	}
}

func testDoctorRefused(t *testing.T, c *harness.Cluster) {
	const name = "doc-refused"
	// Its API listens on 127.0.0.1; it advertises 127.0.0.2, where
	// nothing listens.
	r := c.StartRunner(name, harness.RunnerOptions{Cores: 1, Memory: "1G", NoDocker: true, Args: []string{"--runner-address", "127.0.0.2"}})
	t.Cleanup(func() { c.KillRunner(name) })
	_, port, err := net.SplitHostPort(strings.TrimPrefix(r.API, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	rep := wantFailure(t, c, c.Token(), "h1", "probe runner api "+name, "refused")
	for _, host := range []string{"h2", "h3"} {
		if !hasFailure(rep, host, "probe runner api "+name, "127.0.0.2:"+port) {
			t.Errorf("%s does not report its probe of %s at 127.0.0.2:%s failing:%s", host, name, port, rep.failures())
		}
	}
	for _, ch := range rep.find("", "probe runner api "+name) {
		if ch.Status == doctor.StatusFail && !strings.Contains(ch.Cause, "refused") {
			t.Errorf("%s: cause %q does not explain a refusal", ch.Node, ch.Cause)
		}
	}
}

func testDoctorNetnsDrop(t *testing.T, c *harness.Cluster) {
	if _, err := osexec.LookPath("iptables"); err != nil {
		skipUnlessRequired(t, netnsRequireEnv, "iptables is not installed (apt-get install iptables): %v", err)
	}
	ns, err := harness.NewNetns(t)
	if errors.Is(err, harness.ErrNetnsUnavailable) {
		skipUnlessRequired(t, netnsRequireEnv, "%v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	const name = "doc-dropped"
	// The runner works from the root namespace but advertises the
	// namespace's address, where a listener on its port answers until the
	// namespace's firewall drops that port.
	r := c.StartRunner(name, harness.RunnerOptions{Cores: 1, Memory: "1G", NoDocker: true, Args: []string{"--runner-address", ns.NSIP}})
	t.Cleanup(func() { c.KillRunner(name) })
	_, port, err := net.SplitHostPort(strings.TrimPrefix(r.API, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort(ns.NSIP, port)
	ln, err := ns.Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusTeapot)
	})}
	go srv.Serve(ln) //nolint:errcheck // ends with Close below
	t.Cleanup(func() { srv.Close() })
	// Control: the path over the veth pair works before the rule.
	if conn, err := net.DialTimeout("tcp", addr, 2*time.Second); err != nil {
		t.Fatalf("control connect to %s over %s: %v", addr, ns.HostIf, err)
	} else {
		conn.Close()
	}
	if out, err := ns.Exec("iptables", "-w", "-A", "INPUT", "-p", "tcp", "--dport", port, "-j", "DROP"); err != nil {
		skipUnlessRequired(t, netnsRequireEnv, "iptables does not work in network namespace %s: %v: %s", ns.Name, err, out)
	}
	rep := wantFailure(t, c, c.Token(), "h1", "probe runner api "+name, "timeout")
	for _, ch := range rep.find("", "probe runner api "+name) {
		if ch.Status == doctor.StatusFail && !strings.Contains(ch.Cause, "DROP") {
			t.Errorf("%s: cause %q does not suspect a DROP rule", ch.Node, ch.Cause)
		}
	}
	// The probes really went over the veth pair into the rule.
	out, err := ns.Exec("iptables", "-w", "-L", "INPUT", "-v", "-n", "-x")
	if err != nil {
		t.Fatalf("iptables -L: %v: %s", err, out)
	}
	if dropped := droppedPackets(out, port); dropped == 0 {
		t.Errorf("the DROP rule for port %s matched no packet:\n%s", port, out)
	}
}

// droppedPackets returns the packet count of the DROP rule for port in
// `iptables -L -v -n -x` output.
func droppedPackets(listing, port string) int {
	for _, line := range strings.Split(listing, "\n") {
		f := strings.Fields(line)
		if len(f) > 2 && f[2] == "DROP" && strings.Contains(line, "dpt:"+port) {
			n, _ := strconv.Atoi(f[0]) //nolint:errcheck // 0 fails the caller's check
			return n
		}
	}
	return 0
}

func testDoctorStoppedReplica(t *testing.T, c *harness.Cluster) {
	// The last follower in --host order, so that the CLI's first call
	// reaches a live replica as an admin's usually would.
	stopped := -1
	for _, i := range c.Followers() {
		stopped = max(stopped, i)
	}
	id := c.Replica(stopped).ID
	c.Stop(stopped)
	t.Cleanup(func() { c.Cont(stopped) })
	start := time.Now()
	rep := wantFailure(t, c, c.Token(), id, "reachable", "timeout")
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("doctor took %s with a stopped replica", d)
	}
	// The others see its API hang too.
	for _, i := range c.Running() {
		if i != stopped && !hasFailure(rep, c.Replica(i).ID, "probe host api "+id, "timeout") {
			t.Errorf("%s does not report %s's API timing out:%s", c.Replica(i).ID, id, rep.failures())
		}
	}
}
