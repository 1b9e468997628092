package sshtest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// Hostname is what the "hostname" command prints (with a newline) on an SSHD.
const Hostname = "fake-vps"

// SSHD is a small SSH server standing in for a VPS's sshd. It accepts one
// user key, any user name, and session channels whose exec commands are:
//
//	hostname   prints Hostname and a newline
//	cat        copies standard input to standard output
//	exit N     exits with status N
//
// Anything else writes an error to standard error and exits with 127. Its
// methods are safe for concurrent use.
type SSHD struct {
	port     int
	accepted atomic.Int64
}

// NewSSHD starts an SSHD on 127.0.0.1 that lets in only user, with a fresh
// host key. It is stopped, and its goroutines waited for, at cleanup.
func NewSSHD(tb testing.TB, user ssh.PublicKey) *SSHD {
	tb.Helper()
	want := user.Marshal()
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if bytes.Equal(key.Marshal(), want) {
				return nil, nil
			}
			return nil, errors.New("unknown key")
		},
	}
	cfg.AddHostKey(NewKey(tb).Signer)
	d := &SSHD{}
	d.port = serve(tb, func(c net.Conn) {
		d.accepted.Add(1)
		serveSSH(c, cfg)
	})
	return d
}

// Port returns the port it listens on at 127.0.0.1.
func (d *SSHD) Port() int { return d.port }

// Addr returns its address, 127.0.0.1:port.
func (d *SSHD) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(d.port)) }

// Accepted returns how many TCP connections it has accepted so far,
// including those whose handshake failed.
func (d *SSHD) Accepted() int64 { return d.accepted.Load() }

func serveSSH(c net.Conn, cfg *ssh.ServerConfig) {
	c.SetDeadline(time.Now().Add(30 * time.Second)) //nolint:errcheck // a stuck client only ends sooner
	sconn, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	defer sconn.Close()
	go ssh.DiscardRequests(reqs)
	var wg sync.WaitGroup
	defer wg.Wait()
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "session only") //nolint:errcheck // the client sees the rejection or is gone
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer ch.Close()
			session(ch, creqs)
		}()
	}
}

// session answers the first exec request on ch and refuses the others
// before it.
func session(ch ssh.Channel, reqs <-chan *ssh.Request) {
	for req := range reqs {
		if req.Type != "exec" {
			req.Reply(false, nil) //nolint:errcheck // the client sees the refusal or is gone
			continue
		}
		var p struct{ Command string }
		if err := ssh.Unmarshal(req.Payload, &p); err != nil {
			req.Reply(false, nil) //nolint:errcheck // as above
			continue
		}
		req.Reply(true, nil) //nolint:errcheck // as above
		status := make([]byte, 4)
		binary.BigEndian.PutUint32(status, run(ch, strings.TrimSpace(p.Command)))
		ch.SendRequest("exit-status", false, status) //nolint:errcheck // the client may have gone
		return
	}
}

// run carries out one command on ch and returns its exit status.
func run(ch ssh.Channel, command string) uint32 {
	switch {
	case command == "hostname":
		io.WriteString(ch, Hostname+"\n") //nolint:errcheck // the client may have gone
		return 0
	case command == "cat":
		io.Copy(ch, ch) //nolint:errcheck // as above
		return 0
	case strings.HasPrefix(command, "exit "):
		if n, err := strconv.ParseUint(strings.TrimSpace(strings.TrimPrefix(command, "exit ")), 10, 8); err == nil {
			return uint32(n)
		}
	}
	fmt.Fprintf(ch.Stderr(), "unknown command %q\n", command) //nolint:errcheck // as above
	return 127
}
