package sshtest

import (
	"fmt"
	"net"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// Exec runs command as root over conn (a TCP connection or a tunnel to an
// sshd) with key, without checking the host key, and returns its combined
// standard output and error. A non-zero exit comes back as *ssh.ExitError
// with the output. Exec closes conn.
func Exec(conn net.Conn, key ssh.Signer, command string) (string, error) {
	cc, chans, reqs, err := ssh.NewClientConn(conn, "vps", &ssh.ClientConfig{
		User:            "root",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(key)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), //nolint:gosec // a throwaway test server
		Timeout:         10 * time.Second,
	})
	if err != nil {
		conn.Close()
		return "", fmt.Errorf("ssh handshake: %w", err)
	}
	client := ssh.NewClient(cc, chans, reqs)
	defer client.Close()
	sess, err := client.NewSession()
	if err != nil {
		return "", fmt.Errorf("open session: %w", err)
	}
	defer sess.Close()
	out, err := sess.CombinedOutput(command)
	if err != nil {
		return string(out), fmt.Errorf("run %q: %w", command, err)
	}
	return string(out), nil
}

// Dial runs command as Exec does over a new TCP connection to addr.
func Dial(addr string, key ssh.Signer, command string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return "", fmt.Errorf("dial %s: %w", addr, err)
	}
	return Exec(conn, key, command)
}

// Run is Exec that ends the test when the command cannot be run or fails.
func Run(tb testing.TB, conn net.Conn, key ssh.Signer, command string) string {
	tb.Helper()
	out, err := Exec(conn, key, command)
	if err != nil {
		tb.Fatalf("%v (output %q)", err, out)
	}
	return out
}
