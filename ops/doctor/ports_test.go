package doctor

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// listenEnv makes the test binary a helper process that listens on the
// comma-separated proto/address list it names (e.g. "tcp/127.0.0.12:9000"),
// prints "ready" and holds them until its stdin closes: a real other process
// holding ports, as another member or program on the machine would.
const listenEnv = "HAKURIVER_DOCTOR_TEST_LISTEN"

func TestMain(m *testing.M) {
	if spec := os.Getenv(listenEnv); spec != "" {
		os.Exit(holdListeners(spec))
	}
	os.Exit(m.Run())
}

// reusePort listens with SO_REUSEPORT, which lets two processes bind one
// address and port: the same-address conflict doctor must report.
var reusePort = net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}}

// listenOne binds one "PROTO/ADDR" (tcp, tcp4, udp, udp4) with SO_REUSEPORT.
func listenOne(spec string) (io.Closer, error) {
	proto, addr, _ := strings.Cut(spec, "/")
	if strings.HasPrefix(proto, "udp") {
		return reusePort.ListenPacket(context.Background(), proto, addr)
	}
	return reusePort.Listen(context.Background(), proto, addr)
}

func holdListeners(spec string) int {
	for _, s := range strings.Split(spec, ",") {
		if _, err := listenOne(s); err != nil {
			fmt.Println("error:", err)
			return 1
		}
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin) //nolint:errcheck // returns when the test closes stdin
	return 0
}

// otherProcess starts a helper process holding specs and returns its PID;
// it ends when the test does.
func otherProcess(t *testing.T, specs ...string) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), listenEnv+"="+strings.Join(specs, ","))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() }) //nolint:errcheck // the helper's exit status does not matter
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		t.Fatalf("helper process: %q %v", line, err)
	}
	return cmd.Process.Pid
}

// hold binds spec in this process (with SO_REUSEPORT) until the test ends.
func hold(t *testing.T, spec string) {
	t.Helper()
	c, err := listenOne(spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
}

// freeLoopbackPort returns a port free for TCP and UDP on 127.0.0.1 (and so,
// very likely, on the other loopback addresses the test uses).
func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port))
		ln.Close()
		if err == nil {
			pc.Close()
			return port
		}
	}
	t.Fatal("no port free for TCP and UDP")
	return 0
}

// TestPortsOnSeveralAddresses runs the port checks with real listeners of
// this process and of another one on several loopback addresses (all of
// 127/8 is on lo): members on other addresses with the same ports are no
// conflict; another process on the same address, or on a wildcard, is.
func TestPortsOnSeveralAddresses(t *testing.T) {
	at := func(proto, ip string, port int) string {
		return proto + "/" + net.JoinHostPort(ip, strconv.Itoa(port))
	}
	running := func(bind string, port int) Local {
		return Local{Running: true, BindAddr: bind, Ports: []Port{{Name: "api", Proto: "tcp", Port: port}, {Name: "gossip", Proto: "udp", Port: port}}}
	}
	wantAll := func(t *testing.T, checks []Check, st Status, substr string) {
		t.Helper()
		if len(checks) == 0 {
			t.Fatal("no checks")
		}
		for _, c := range checks {
			if c.Status != st || !strings.Contains(c.Measured, substr) {
				t.Errorf("%s = %s %q, want %s containing %q", c.Name, c.Status, c.Measured, st, substr)
			}
		}
	}

	t.Run("OtherAddressesSamePort", func(t *testing.T) {
		port := freeLoopbackPort(t)
		otherProcess(t, at("tcp", "127.0.0.12", port), at("udp", "127.0.0.12", port),
			at("tcp", "127.0.0.13", port), at("udp", "127.0.0.13", port))
		hold(t, at("tcp", "127.0.0.11", port))
		hold(t, at("udp", "127.0.0.11", port))
		wantAll(t, running("127.0.0.11", port).checkPorts(), StatusOK, "held by this process")
		// Before start (--local): the port is free on this member's address.
		before := Local{BindAddr: "127.0.0.14", Ports: []Port{{Name: "api", Proto: "tcp", Port: port}, {Name: "gossip", Proto: "udp", Port: port}}}
		wantAll(t, before.checkPorts(), StatusOK, "is free")
	})

	t.Run("SameAddress", func(t *testing.T) {
		port := freeLoopbackPort(t)
		pid := otherProcess(t, at("tcp", "127.0.0.11", port), at("udp", "127.0.0.11", port), at("tcp", "127.0.0.12", port))
		hold(t, at("tcp", "127.0.0.11", port))
		hold(t, at("udp", "127.0.0.11", port))
		checks := running("127.0.0.11", port).checkPorts()
		wantAll(t, checks, StatusFail, fmt.Sprintf("also held on 127.0.0.11:%d by pid %d", port, pid))
		for _, c := range checks {
			if strings.Contains(c.Measured, "127.0.0.12") {
				t.Errorf("%s names the other address: %q", c.Name, c.Measured)
			}
		}
		// Before start, only the holder of this address is named.
		before := Local{BindAddr: "127.0.0.11", Ports: []Port{{Name: "api", Proto: "tcp", Port: port}}}
		c := before.checkPorts()[0]
		if c.Status != StatusFail || !strings.Contains(c.Measured, "pid "+strconv.Itoa(pid)) || strings.Contains(c.Measured, "127.0.0.12") {
			t.Errorf("before start = %+v", c)
		}
	})

	t.Run("WildcardOther", func(t *testing.T) {
		port := freeLoopbackPort(t)
		pid := otherProcess(t, at("tcp4", "0.0.0.0", port), at("udp4", "0.0.0.0", port))
		hold(t, at("tcp", "127.0.0.11", port))
		hold(t, at("udp", "127.0.0.11", port))
		wantAll(t, running("127.0.0.11", port).checkPorts(), StatusFail, fmt.Sprintf("0.0.0.0:%d by pid %d", port, pid))
	})

	t.Run("DualStackWildcardOther", func(t *testing.T) {
		port := freeLoopbackPort(t)
		// Go binds "tcp" on the wildcard as [::] with IPv4 mapped in.
		pid := otherProcess(t, at("tcp", "", port), at("udp", "", port))
		hold(t, at("tcp", "127.0.0.11", port))
		hold(t, at("udp", "127.0.0.11", port))
		wantAll(t, running("127.0.0.11", port).checkPorts(), StatusFail, fmt.Sprintf("[::]:%d by pid %d", port, pid))
	})

	t.Run("WildcardSelf", func(t *testing.T) {
		port := freeLoopbackPort(t)
		pid := otherProcess(t, at("tcp", "127.0.0.13", port), at("udp", "127.0.0.13", port))
		hold(t, at("tcp", "0.0.0.0", port))
		hold(t, at("udp", "0.0.0.0", port))
		wantAll(t, running("0.0.0.0", port).checkPorts(), StatusFail, fmt.Sprintf("127.0.0.13:%d by pid %d", port, pid))
	})
}

func TestOverlaps(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"127.0.0.11", "127.0.0.12", false},
		{"127.0.0.11", "127.0.0.11", true},
		{"0.0.0.0", "127.0.0.11", true},
		{"127.0.0.11", "0.0.0.0", true},
		{"::", "127.0.0.11", true},
		{"0.0.0.0", "::1", false},
		{"::1", "127.0.0.1", false},
		{"::ffff:127.0.0.1", "127.0.0.1", true},
	}
	for _, tt := range tests {
		if got := overlaps(net.ParseIP(tt.a), net.ParseIP(tt.b)); got != tt.want {
			t.Errorf("overlaps(%s, %s) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}
