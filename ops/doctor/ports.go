package doctor

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// socket is one listening socket found in /proc/net.
type socket struct {
	addr  string // ip:port
	ip    net.IP
	inode string
}

// owner is the process holding a socket.
type owner struct {
	pid  int
	comm string
}

func (o owner) String() string {
	if o.pid == 0 {
		return "an unknown process (another user's? run as root to see it)"
	}
	return fmt.Sprintf("pid %d (%s)", o.pid, o.comm)
}

// checkPorts checks every configured port. A running process must be the only
// listener on its ports; before start (--local) the ports must be free.
func (l Local) checkPorts() []Check {
	var out []Check
	for _, p := range l.Ports {
		if p.Port <= 0 {
			continue
		}
		name := fmt.Sprintf("port %s %d/%s", p.Name, p.Port, p.Proto)
		if l.Running {
			out = append(out, l.checkOwnPort(name, p))
		} else {
			out = append(out, l.checkFreePort(name, p))
		}
	}
	return out
}

// overlaps reports whether sockets bound to a and b on one port take each
// other's connections: the same address, or a wildcard of a family that
// covers the other (0.0.0.0 covers IPv4; :: covers both, as Linux's
// dual-stack default does). Five members on five addresses of one machine,
// each on the same ports, do not conflict.
func overlaps(a, b net.IP) bool {
	covers := func(w, x net.IP) bool {
		return w.IsUnspecified() && (w.To4() == nil || x.To4() != nil)
	}
	return a.Equal(b) || covers(a, b) || covers(b, a)
}

// bindIP is the address the process binds to: the wildcard when empty or
// not an IP.
func (l Local) bindIP() net.IP {
	if ip := net.ParseIP(l.BindAddr); ip != nil {
		return ip
	}
	return net.IPv4zero
}

// checkOwnPort reports who listens on p: this process, and nobody else on
// an address that overlaps one of this process's sockets on that port.
func (l Local) checkOwnPort(name string, p Port) Check {
	socks, err := l.listeners(p.Proto, p.Port)
	if err != nil {
		return okCheck(name, "held by this process (listeners not readable: "+err.Error()+")")
	}
	own := l.ownInodes()
	var mine []net.IP
	for _, s := range socks {
		if own[s.inode] {
			mine = append(mine, s.ip)
		}
	}
	if len(mine) == 0 {
		mine = []net.IP{l.bindIP()}
	}
	var others []string
	for _, s := range socks {
		if !own[s.inode] && overlapsAny(s.ip, mine) {
			others = append(others, s.addr+" by "+l.ownerOf(s.inode).String())
		}
	}
	if len(others) > 0 {
		return failCheck(name, "also held on "+strings.Join(others, "; "),
			"another program listens on the same port: members may reach it instead of this one; stop it or move one of them")
	}
	return okCheck(name, fmt.Sprintf("held by this process (pid %d) only", os.Getpid()))
}

// checkFreePort tries to bind p on the bind address and, when it is taken,
// names the process that holds it.
func (l Local) checkFreePort(name string, p Port) Check {
	addr := net.JoinHostPort(l.BindAddr, strconv.Itoa(p.Port))
	var err error
	if p.Proto == "udp" {
		var c net.PacketConn
		if c, err = net.ListenPacket("udp", addr); err == nil {
			c.Close()
		}
	} else {
		var ln net.Listener
		if ln, err = net.Listen("tcp", addr); err == nil {
			ln.Close()
		}
	}
	switch {
	case err == nil:
		return okCheck(name, addr+" is free")
	case errors.Is(err, syscall.EADDRINUSE):
		holders := "another process"
		hakuriver := false
		if socks, lerr := l.listeners(p.Proto, p.Port); lerr == nil && len(socks) > 0 {
			var hs []string
			for _, s := range socks {
				if !overlaps(s.ip, l.bindIP()) {
					continue
				}
				o := l.ownerOf(s.inode)
				hakuriver = hakuriver || strings.Contains(o.comm, "hakuriver")
				hs = append(hs, s.addr+" by "+o.String())
			}
			if len(hs) > 0 {
				holders = strings.Join(hs, "; ")
			}
		}
		if hakuriver {
			return warnCheck(name, addr+" in use: "+holders, "a hakuriver process already holds it: fine if this node is already running, else stop the old one")
		}
		return failCheck(name, addr+" in use: "+holders, "another program holds the port: stop it or configure another port")
	case errors.Is(err, syscall.EACCES):
		return failCheck(name, fmt.Sprintf("%s: %v", addr, err), "ports below 1024 need root or CAP_NET_BIND_SERVICE: use a higher port")
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return failCheck(name, fmt.Sprintf("%s: %v", addr, err), causeNotLocal)
	}
	return failCheck(name, fmt.Sprintf("%s: %v", addr, err), "cannot listen there: see the measured error")
}

// overlapsAny reports whether ip overlaps any of ips.
func overlapsAny(ip net.IP, ips []net.IP) bool {
	for _, o := range ips {
		if overlaps(ip, o) {
			return true
		}
	}
	return false
}

// listeners returns the sockets listening (tcp) or bound (udp) on port, read
// from /proc/net.
func (l Local) listeners(proto string, port int) ([]socket, error) {
	files := []string{"tcp", "tcp6"}
	state := "0A" // TCP_LISTEN
	if proto == "udp" {
		files, state = []string{"udp", "udp6"}, "07" // TCP_CLOSE: an unconnected UDP socket
	}
	var out []socket
	read := 0
	for _, f := range files {
		socks, err := parseProcNet(filepath.Join(l.procRoot(), "net", f), state, port)
		if err != nil {
			continue // tcp6 is missing without IPv6
		}
		read++
		out = append(out, socks...)
	}
	if read == 0 {
		return nil, fmt.Errorf("read %s/net/%s: not available", l.procRoot(), proto)
	}
	return out, nil
}

// parseProcNet reads one /proc/net/{tcp,tcp6,udp,udp6} table and returns
// the sockets in state on port.
func parseProcNet(path, state string, port int) ([]socket, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read listeners: %w", err)
	}
	defer f.Close()
	var out []socket
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || fields[3] != state {
			continue
		}
		ip, p, ok := decodeProcAddr(fields[1])
		if !ok || p != port {
			continue
		}
		out = append(out, socket{addr: net.JoinHostPort(ip.String(), strconv.Itoa(p)), ip: ip, inode: fields[9]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read listeners: %w", err)
	}
	return out, nil
}

// decodeProcAddr decodes "0100007F:1F40" (IPv4) or the 32-digit IPv6 form:
// the address is stored as 32-bit words in host (little-endian) order.
func decodeProcAddr(s string) (net.IP, int, bool) {
	hexIP, hexPort, found := strings.Cut(s, ":")
	if !found {
		return nil, 0, false
	}
	port, err := strconv.ParseUint(hexPort, 16, 16)
	if err != nil {
		return nil, 0, false
	}
	b, err := hex.DecodeString(hexIP)
	if err != nil || (len(b) != 4 && len(b) != 16) {
		return nil, 0, false
	}
	ip := make(net.IP, len(b))
	for w := 0; w < len(b); w += 4 {
		ip[w], ip[w+1], ip[w+2], ip[w+3] = b[w+3], b[w+2], b[w+1], b[w]
	}
	return ip, int(port), true
}

// ownInodes returns the socket inodes of this process.
func (l Local) ownInodes() map[string]bool {
	out := map[string]bool{}
	dir := filepath.Join(l.procRoot(), "self", "fd")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return out
	}
	for _, e := range entries {
		if link, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil {
			if ino, ok := socketInode(link); ok {
				out[ino] = true
			}
		}
	}
	return out
}

// socketInode parses "socket:[12345]".
func socketInode(link string) (string, bool) {
	rest, found := strings.CutPrefix(link, "socket:[")
	if !found || !strings.HasSuffix(rest, "]") {
		return "", false
	}
	return strings.TrimSuffix(rest, "]"), true
}

// ownerOf finds the process holding socket inode by scanning /proc/*/fd; a
// zero owner means it is not visible to this user.
func (l Local) ownerOf(inode string) owner {
	root := l.procRoot()
	procs, err := os.ReadDir(root)
	if err != nil {
		return owner{}
	}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fdDir := filepath.Join(root, p.Name(), "fd")
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
			if err != nil {
				continue
			}
			if ino, ok := socketInode(link); ok && ino == inode {
				comm, _ := os.ReadFile(filepath.Join(root, p.Name(), "comm")) //nolint:errcheck // an empty name is fine
				return owner{pid: pid, comm: strings.TrimSpace(string(comm))}
			}
		}
	}
	return owner{}
}
