package doctor

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// fakeAddrs is a machine with a loopback interface and one LAN address.
func fakeAddrs() ([]net.Addr, error) {
	return []net.Addr{
		&net.IPNet{IP: net.ParseIP("127.0.0.1"), Mask: net.CIDRMask(8, 32)},
		&net.IPNet{IP: net.ParseIP("10.1.2.3"), Mask: net.CIDRMask(24, 32)},
		&net.IPNet{IP: net.ParseIP("::1"), Mask: net.CIDRMask(128, 128)},
	}, nil
}

// fakeLookup resolves "self.lan" and "elsewhere.lan" and nothing else; it
// never asks a DNS server.
func fakeLookup(_ context.Context, host string) ([]string, error) {
	switch host {
	case "self.lan":
		return []string{"10.1.2.3"}, nil
	case "elsewhere.lan":
		return []string{"192.0.2.1"}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func TestAdvertiseAddress(t *testing.T) {
	tests := []struct {
		addr     string
		status   Status
		measured string
	}{
		{"127.0.0.1", StatusOK, "is on this machine"},
		{"127.0.0.53", StatusOK, "is on this machine"}, // all of 127/8 is loopback
		{"10.1.2.3", StatusOK, "is on this machine"},
		{"::1", StatusOK, "is on this machine"},
		{"self.lan", StatusOK, "is on this machine"},
		// TEST-NET addresses: parsed and compared, never dialled.
		{"192.0.2.1", StatusWarn, "192.0.2.1 is not an address of this machine (it has 127.0.0.1, 10.1.2.3, ::1)"},
		{"elsewhere.lan", StatusWarn, "elsewhere.lan (192.0.2.1) is not an address"},
		{"missing.lan", StatusFail, "name does not resolve"},
		{"0.0.0.0", StatusFail, "0.0.0.0"},
		{"", StatusFail, "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			l := Local{AdvertiseAddr: tt.addr, InterfaceAddrs: fakeAddrs, LookupHost: fakeLookup}
			c := l.checkAdvertise(context.Background())
			if c.Status != tt.status || !strings.Contains(c.Measured, tt.measured) {
				t.Fatalf("checkAdvertise(%q) = %+v, want %s ~%q", tt.addr, c, tt.status, tt.measured)
			}
			if (c.Status == StatusOK) != (c.Cause == "") {
				t.Fatalf("cause %q with status %s", c.Cause, c.Status)
			}
		})
	}
}

func TestBindAndHostnames(t *testing.T) {
	l := Local{BindAddr: "192.0.2.1", InterfaceAddrs: fakeAddrs, LookupHost: fakeLookup, Hostnames: []string{"self.lan", "missing.lan", "10.0.0.1"}}
	c, checked := l.checkBind()
	if !checked || c.Status != StatusFail || !strings.Contains(c.Cause, "cannot listen") {
		t.Fatalf("bind on a foreign address = %+v", c)
	}
	if _, checked := (Local{BindAddr: "0.0.0.0"}).checkBind(); checked {
		t.Fatal("the wildcard bind address was checked")
	}
	byName := map[string]Check{}
	for _, c := range l.checkHostnames(context.Background()) {
		byName[c.Name] = c
	}
	if c := byName["resolve self.lan"]; c.Status != StatusOK || !strings.Contains(c.Measured, "10.1.2.3") {
		t.Fatalf("self.lan = %+v", c)
	}
	if c := byName["resolve missing.lan"]; c.Status != StatusFail || !strings.Contains(c.Cause, "does not resolve") {
		t.Fatalf("missing.lan = %+v", c)
	}
	if _, ok := byName["resolve 10.0.0.1"]; ok {
		t.Fatal("an IP address was resolved")
	}
}

func TestPaths(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "a-file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		path   Path
		status Status
		want   string // substring of Measured
		cause  string // substring of Cause
	}{
		{"writable dir", Path{Name: "d", Path: dir, Dir: true, Write: true}, StatusOK, "writable", ""},
		{"readable dir", Path{Name: "d", Path: dir, Dir: true}, StatusOK, "readable", ""},
		{"missing dir", Path{Name: "d", Path: filepath.Join(dir, "nope"), Dir: true, Write: true}, StatusFail, "does not exist", "create it"},
		{"missing dir created at start", Path{Name: "d", Path: filepath.Join(dir, "later", "deeper"), Dir: true, Write: true, Created: true}, StatusOK, "created when first needed", ""},
		{"file where the directory should be", Path{Name: "task_outputs", Path: file, Dir: true, Write: true}, StatusFail, "is a regular file, not a directory", "move it away"},
		// A path under a regular file cannot be written even by root.
		{"path under a file", Path{Name: "d", Path: filepath.Join(file, "sub"), Dir: true, Write: true}, StatusFail, "not a directory", "a parent of the path is a file"},
		{"path under a file, created at start", Path{Name: "d", Path: filepath.Join(file, "sub"), Dir: true, Write: true, Created: true}, StatusFail, "not a directory", "a parent of the path is a file"},
		{"writable file", Path{Name: "log", Path: file, Write: true}, StatusOK, "writable", ""},
		{"missing log file, parent writable", Path{Name: "log", Path: filepath.Join(dir, "new.log"), Write: true}, StatusOK, "can be created", ""},
		{"directory where a file should be", Path{Name: "config", Path: dir}, StatusFail, "is a directory", "file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Local{}.checkPath(tt.path)
			if c.Status != tt.status || !strings.Contains(c.Measured, tt.want) || !strings.Contains(c.Cause, tt.cause) {
				t.Fatalf("checkPath = %+v, want %s ~%q cause ~%q", c, tt.status, tt.want, tt.cause)
			}
		})
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 {
		t.Fatalf("probe files left behind: %v %v", entries, err)
	}
}

// notWritableChildEnv names the directory the re-executed test binary
// checks as an unprivileged user.
const notWritableChildEnv = "HAKURIVER_TEST_NOT_WRITABLE_DIR"

// TestPathNotWritableByMode checks that a directory whose mode forbids
// writing is reported as failing. Root ignores the mode, so as root (CI) the
// test binary runs itself again as nobody (uid 65534) over a directory that
// nobody owns with mode 0500.
func TestPathNotWritableByMode(t *testing.T) {
	if dir := os.Getenv(notWritableChildEnv); dir != "" {
		c := Local{}.checkPath(Path{Name: "task_outputs", Path: dir, Dir: true, Write: true})
		if c.Status != StatusFail || !strings.Contains(c.Cause, "permission denied") {
			t.Fatalf("checkPath as uid %d = %+v", os.Geteuid(), c)
		}
		return
	}
	if os.Geteuid() != 0 {
		dir := filepath.Join(t.TempDir(), "ro")
		if err := os.Mkdir(dir, 0o500); err != nil {
			t.Fatal(err)
		}
		t.Setenv(notWritableChildEnv, dir)
		TestPathNotWritableByMode(t)
		return
	}
	// A world-readable place for a copy of the test binary and the directory.
	base, err := os.MkdirTemp("", "doctor-perm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(base, "doctor.test")
	if err := copyFile(os.Args[0], bin, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "ro")
	if err := os.Mkdir(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	const nobody = 65534
	if err := os.Chown(dir, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestPathNotWritableByMode$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), notWritableChildEnv+"="+dir)
	cmd.Dir = base
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestPathNotWritableByMode") {
		t.Fatalf("the check as nobody: %v\n%s", err, out)
	}
	// Control: the same directory made writable passes for nobody.
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(bin, "-test.run=^TestPathNotWritableByMode$", "-test.count=1")
	cmd.Env = append(os.Environ(), notWritableChildEnv+"="+dir)
	cmd.Dir = base
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("control: the check as nobody did not tell a writable directory apart:\n%s", out)
	}
}

// copyFile copies src to dst with mode perm.
func copyFile(src, dst string, perm os.FileMode) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, perm)
}

func TestDiskThresholds(t *testing.T) {
	const gib = 1 << 30
	tests := []struct {
		avail  uint64
		err    error
		status Status
		want   string
	}{
		{50 * gib, nil, StatusOK, "50.0GiB free of 100.0GiB (50.0%)"},
		{10 * gib, nil, StatusOK, "(10.0%)"},
		{9 * gib, nil, StatusWarn, "(9.0%)"},
		{2 * gib, nil, StatusWarn, "(2.0%)"},
		{gib, nil, StatusFail, "(1.0%)"},
		{0, errors.New("statfs: boom"), StatusWarn, "boom"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			l := Local{Statfs: func(string) (uint64, uint64, error) { return 100 * gib, tt.avail, tt.err }}
			c := l.checkDisk(Path{Name: "data_dir", Path: t.TempDir(), Disk: true})
			if c.Status != tt.status || !strings.Contains(c.Measured, tt.want) || c.Name != "disk data_dir" {
				t.Fatalf("checkDisk = %+v, want %s ~%q", c, tt.status, tt.want)
			}
		})
	}
}

// TestDiskSmallFilesystem checks the absolute threshold: a small
// filesystem with a fine share free but under 1 GiB left warns.
func TestDiskSmallFilesystem(t *testing.T) {
	const mib = 1 << 20
	l := Local{Statfs: func(string) (uint64, uint64, error) { return 4096 * mib, 900 * mib, nil }}
	if c := l.checkDisk(Path{Name: "data_dir", Path: t.TempDir(), Disk: true}); c.Status != StatusWarn || !strings.Contains(c.Cause, "1GiB") {
		t.Fatalf("checkDisk = %+v, want a warning under 1GiB", c)
	}
}

func TestPorts(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	held := ln.Addr().(*net.TCPAddr).Port
	free, _ := strconv.Atoi(closedPort(t)[len("127.0.0.1:"):])
	pid := "pid " + strconv.Itoa(os.Getpid())

	before := Local{BindAddr: "127.0.0.1", Ports: []Port{{Name: "api", Proto: "tcp", Port: held}, {Name: "raft", Proto: "tcp", Port: free}, {Name: "zero", Proto: "tcp"}}}
	checks := before.checkPorts()
	if len(checks) != 2 {
		t.Fatalf("checks = %+v", checks)
	}
	if c := checks[0]; c.Status != StatusFail || !strings.Contains(c.Measured, "in use") || !strings.Contains(c.Measured, pid) {
		t.Fatalf("held port before start = %+v", c)
	}
	if c := checks[1]; c.Status != StatusOK || !strings.Contains(c.Measured, "free") {
		t.Fatalf("free port = %+v", c)
	}

	running := before
	running.Running = true
	running.Ports = running.Ports[:1]
	if c := running.checkPorts()[0]; c.Status != StatusOK || !strings.Contains(c.Measured, "held by this process") {
		t.Fatalf("own port while running = %+v", c)
	}
}

func TestDecodeProcAddr(t *testing.T) {
	tests := []struct {
		in, ip string
		port   int
	}{
		{"0100007F:1F40", "127.0.0.1", 8000},
		{"00000000:0050", "0.0.0.0", 80},
		{"00000000000000000000000001000000:1F41", "::1", 8001},
	}
	for _, tt := range tests {
		ip, port, ok := decodeProcAddr(tt.in)
		if !ok || ip.String() != tt.ip || port != tt.port {
			t.Errorf("decodeProcAddr(%q) = %v %d %v, want %s %d", tt.in, ip, port, ok, tt.ip, tt.port)
		}
	}
	if _, _, ok := decodeProcAddr("zz:1"); ok {
		t.Error("garbage decoded")
	}
}

func TestRunnerUserAndExecutables(t *testing.T) {
	if c := checkRunnerUser(""); c.Status != StatusOK {
		t.Fatalf("empty runner_user = %+v", c)
	}
	if c := checkRunnerUser("no-such-user-hakuriver"); c.Status != StatusFail || !strings.Contains(c.Cause, "no such user") {
		t.Fatalf("missing runner_user = %+v", c)
	}
	self := strconv.Itoa(os.Geteuid())
	if c := checkRunnerUser(self); c.Status != StatusOK {
		t.Fatalf("own uid as runner_user = %+v", c)
	}
	if c := checkExecutable(Executable{Name: "sh"}); c.Status != StatusOK {
		t.Fatalf("sh = %+v", c)
	}
	if c := checkExecutable(Executable{Name: "numactl", Path: "/nonexistent/numactl", Required: true, Why: "NUMA binding"}); c.Status != StatusFail || !strings.Contains(c.Cause, "NUMA binding") {
		t.Fatalf("required missing = %+v", c)
	}
	if c := checkExecutable(Executable{Name: "hakuriver-no-such-tool"}); c.Status != StatusWarn {
		t.Fatalf("optional missing = %+v", c)
	}
}

func TestCgroups(t *testing.T) {
	v2 := t.TempDir()
	if err := os.WriteFile(filepath.Join(v2, "cgroup.controllers"), []byte("cpu memory\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if c := (Local{CgroupRoot: v2}).checkCgroups(); c.Status != StatusOK || !strings.Contains(c.Measured, "v2") {
		t.Fatalf("v2 = %+v", c)
	}
	empty := t.TempDir()
	if c := (Local{CgroupRoot: empty}).checkCgroups(); c.Status != StatusWarn || !strings.Contains(c.Cause, "without cpu/memory limits") {
		t.Fatalf("no hierarchy = %+v", c)
	}
	if c := (Local{CgroupRoot: empty, CgroupsRequired: true}).checkCgroups(); c.Status != StatusFail {
		t.Fatalf("no hierarchy, required = %+v", c)
	}
	if entries, _ := os.ReadDir(v2); len(entries) != 1 {
		t.Fatalf("probe group left behind: %v", entries)
	}
}

func TestDockerSocket(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "docker.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/_ping" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte("OK"))
	})}
	go srv.Serve(ln) //nolint:errcheck // closed below
	t.Cleanup(func() { srv.Close() })

	if c := (Local{DockerSocket: sock, DockerRequired: true}).checkDocker(context.Background()); c.Status != StatusOK || !strings.Contains(c.Measured, "/_ping") {
		t.Fatalf("answering socket = %+v", c)
	}
	missing := filepath.Join(dir, "missing.sock")
	if c := (Local{DockerSocket: missing}).checkDocker(context.Background()); c.Status != StatusWarn || !strings.Contains(c.Cause, "not running") {
		t.Fatalf("missing socket, optional = %+v", c)
	}
	if c := (Local{DockerSocket: missing, DockerRequired: true}).checkDocker(context.Background()); c.Status != StatusFail {
		t.Fatalf("missing socket, required = %+v", c)
	}
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o644) //nolint:errcheck // the check below fails without it
	if c := (Local{DockerSocket: file, DockerRequired: true}).checkDocker(context.Background()); c.Status != StatusFail || !strings.Contains(c.Cause, "not a socket") {
		t.Fatalf("regular file = %+v", c)
	}
}

func TestRunLocalOrderAndFakes(t *testing.T) {
	dir := t.TempDir()
	l := Local{
		AdvertiseAddr: "10.1.2.3", BindAddr: "0.0.0.0",
		Paths:           []Path{{Name: "shared_dir", Path: dir, Dir: true, Write: true, Disk: true}},
		CheckRunnerUser: true,
		InterfaceAddrs:  fakeAddrs, LookupHost: fakeLookup,
		Statfs: func(string) (uint64, uint64, error) { return 100, 50, nil },
	}
	var names []string
	for _, c := range RunLocal(context.Background(), l) {
		names = append(names, c.Name)
	}
	got := strings.Join(names, ",")
	for _, want := range []string{"process user,clock,advertise address", "path shared_dir,disk shared_dir,runner_user"} {
		if !strings.Contains(got, want) {
			t.Fatalf("checks %s lack %s", got, want)
		}
	}
}
