package sshtest_test

import (
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/hakuriver/hakuriver-ha/sshproxy/sshtest"
)

func TestSSHD(t *testing.T) {
	user, other := sshtest.NewKey(t), sshtest.NewKey(t)
	d := sshtest.NewSSHD(t, user.PublicKey())
	if out, err := sshtest.Dial(d.Addr(), user.Signer, "hostname"); err != nil || out != sshtest.Hostname+"\n" {
		t.Fatalf("hostname = %q, %v", out, err)
	}
	var ee *ssh.ExitError
	if _, err := sshtest.Dial(d.Addr(), user.Signer, "exit 3"); !errors.As(err, &ee) || ee.ExitStatus() != 3 {
		t.Fatalf("exit 3 = %v", err)
	}
	if out, err := sshtest.Dial(d.Addr(), user.Signer, "rm -rf /"); !errors.As(err, &ee) || ee.ExitStatus() != 127 || !strings.Contains(out, "unknown command") {
		t.Fatalf("unknown command = %q, %v", out, err)
	}
	if _, err := sshtest.Dial(d.Addr(), other.Signer, "hostname"); err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
		t.Fatalf("another key = %v", err)
	}
	if n := d.Accepted(); n != 4 {
		t.Fatalf("Accepted = %d, want 4", n)
	}
	if line := user.AuthorizedKey("me@lab"); !strings.HasPrefix(line, "ssh-ed25519 ") || !strings.HasSuffix(line, " me@lab") {
		t.Fatalf("AuthorizedKey = %q", line)
	}
}

func TestEchoServer(t *testing.T) {
	port := sshtest.EchoServer(t)
	c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	const msg = "hello\n"
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
		t.Fatalf("echo = %q, %v", got, err)
	}
}
