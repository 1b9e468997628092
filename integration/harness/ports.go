//go:build integration

package harness

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
)

// replicaPorts are the four ports of one replica.
type replicaPorts struct {
	api, raft, gossip, ssh int
}

// portSet is a reservation of ports for some replicas: the listeners keep
// them busy until release.
type portSet struct {
	ports []replicaPorts
	held  []io.Closer
}

// reservePorts picks free loopback ports for n replicas by listening on
// 127.0.0.1:0 (TCP, and UDP too for gossip). The listeners stay open until
// release, so the ports of one reservation are all distinct.
func reservePorts(n int) (*portSet, error) {
	ps := &portSet{}
	listen := func() (int, error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("reserve a port: %w", err)
		}
		ps.held = append(ps.held, ln)
		return ln.Addr().(*net.TCPAddr).Port, nil
	}
	for range n {
		var p replicaPorts
		var err error
		for _, dst := range []*int{&p.api, &p.raft, &p.ssh} {
			if *dst, err = listen(); err != nil {
				ps.release()
				return nil, err
			}
		}
		// Gossip needs the same port free for TCP and UDP.
		for attempt := 0; p.gossip == 0; attempt++ {
			if attempt == 20 {
				ps.release()
				return nil, errors.New("reserve a gossip port: no port free for both TCP and UDP")
			}
			port, err := listen()
			if err != nil {
				ps.release()
				return nil, err
			}
			pc, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
			if err != nil {
				continue
			}
			ps.held = append(ps.held, pc)
			p.gossip = port
		}
		ps.ports = append(ps.ports, p)
	}
	return ps, nil
}

// release closes every reserved listener so the replicas can bind them.
func (ps *portSet) release() {
	for _, l := range ps.held {
		l.Close() //nolint:errcheck // a listener used only to hold a port
	}
	ps.held = nil
}
