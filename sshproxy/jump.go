package sshproxy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// Permissions.Extensions keys set at authentication.
const (
	extKey    = "hakuriver-pubkey"    // the client's public key, wire format
	extFP     = "hakuriver-pubkey-fp" // its SHA256 fingerprint, for logs
	extAdmin  = "hakuriver-admin"     // "1" for an admin key
	serverVer = "SSH-2.0-HakuRiverProxy"
)

// maxRejects closes an SSH connection after this many refused channels, so
// that one authenticated connection cannot probe task IDs for ever.
const maxRejects = 16

// newSSHConfig builds the jump host's server config.
//
// SSH authentication happens before the client names the VPS it wants, so
// a public key is accepted provisionally (after the client proved it holds
// the private key) when it is an admin key, registered on an account, or
// could be a VPS's own key for an anonymous caller (when the anonymous role
// reaches any VPS); any other key is refused at once, so that the client
// moves on to its next one. The key is remembered in
// Permissions.Extensions, and every direct-tcpip request is then checked
// against the named VPS, with the accounts as they are at that moment,
// before anything is dialled. When the SSH user name is itself a task ID
// ("ssh -J 123@HOST:PORT root@123") that check happens at authentication
// already.
func (s *Server) newSSHConfig() *ssh.ServerConfig {
	cfg := &ssh.ServerConfig{
		ServerVersion: serverVer,
		MaxAuthTries:  6,
		PublicKeyCallback: func(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			perms := &ssh.Permissions{Extensions: map[string]string{
				extKey: string(key.Marshal()),
				extFP:  ssh.FingerprintSHA256(key),
			}}
			if containsKey(s.admin, key) {
				perms.Extensions[extAdmin] = "1"
				return perms, nil
			}
			if len(s.cfg.Accounts.KeyCallers(key)) == 0 && !s.cfg.Accounts.Anonymous().Role.AtLeast(fsm.RoleUser) {
				return nil, refuse(ErrKeyNotAuthorized, nil, "key not registered on any account")
			}
			if id, ok := ParseTaskID(meta.User()); ok {
				t, terr := s.resolve(id)
				if terr != nil {
					return nil, terr
				}
				if !s.keyMayReach(key, t) {
					return nil, refuse(ErrKeyNotAuthorized, nil, "key not authorized for VPS task %d", id)
				}
			}
			return perms, nil
		},
	}
	cfg.AddHostKey(s.cfg.HostKey)
	return cfg
}

// keyMayReach reports whether the holder of key (not an admin key) may
// reach t now: when accounts registered the key, one of them must be
// allowed to; otherwise the caller is anonymous, and needs both the
// anonymous role's permission and the VPS's own key.
func (s *Server) keyMayReach(key ssh.PublicKey, t Target) bool {
	if callers := s.cfg.Accounts.KeyCallers(key); len(callers) > 0 {
		return anyMayReach(callers, t.Task)
	}
	return s.cfg.Accounts.Anonymous().MayReach(t.Task) && t.Authorizes(key)
}

// handleSSH serves one jump-host connection: the handshake, then
// direct-tcpip channels, each in a goroutine this function waits for.
func (s *Server) handleSSH(c net.Conn) {
	remote := c.RemoteAddr().String()
	c.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout)) //nolint:errcheck // a failed deadline shows up as an I/O error
	sconn, chans, reqs, err := ssh.NewServerConn(c, s.sshCfg)
	if err != nil {
		s.log.Info("ssh jump handshake failed", "remote", remote, "err", err)
		return
	}
	c.SetDeadline(time.Time{}) //nolint:errcheck // see above
	defer sconn.Close()
	log := s.log.With("mode", "jump", "remote", remote, "user", sconn.User(), "key", sconn.Permissions.Extensions[extFP])
	log.Debug("ssh jump client authenticated")

	upstreams := newConnSet()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		ssh.DiscardRequests(reqs) // no global requests (tcpip-forward, ...) are served
	}()
	var rejects atomic.Int64
	for nc := range chans {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !s.serveChannel(log, nc, sconn.Permissions, upstreams) && rejects.Add(1) == maxRejects {
				log.Warn("ssh jump client closed after too many refused channels", "refused", maxRejects)
				sconn.Close()
			}
		}()
	}
	// The connection is gone (or given up on): end every relay it carried.
	sconn.Close()
	upstreams.closeAll()
	wg.Wait()
}

// serveChannel serves one channel open request: a refused one is answered
// and reported false; an accepted one is relayed until it ends.
func (s *Server) serveChannel(log *slog.Logger, nc ssh.NewChannel, perms *ssh.Permissions, upstreams *connSet) bool {
	if nc.ChannelType() != "direct-tcpip" {
		nc.Reject(ssh.Prohibited, "the HakuRiver SSH proxy offers no shell; use it as a jump host: ssh -J proxy@HOST:PORT root@<task_id>") //nolint:errcheck // the client went away
		s.refused.Add(1)
		log.Info("ssh jump channel refused", "type", nc.ChannelType())
		return false
	}
	up, id, terr := s.openDirect(nc, perms)
	if terr != nil {
		nc.Reject(rejectType(terr), terr.Reason) //nolint:errcheck // the client went away
		s.refused.Add(1)
		log.Info("ssh tunnel refused", "reason", terr.Reason, "err", terr.Err)
		return false
	}
	if !upstreams.add(up) {
		up.Close()
		nc.Reject(ssh.ConnectionFailed, "connection closing") //nolint:errcheck // the client went away
		return true
	}
	defer upstreams.remove(up)
	ch, creqs, err := nc.Accept()
	if err != nil {
		up.Close()
		return true
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		ssh.DiscardRequests(creqs)
	}()
	start := time.Now()
	vps := up.RemoteAddr().String()
	log.Info("ssh tunnel opened", "vps", vps, "as", s.keyUsers(perms), "active", s.active.Load())
	sent, received := s.relayTunnel(id, ch, ch, up)
	log.Info("ssh tunnel closed", "vps", vps, "bytes_to_vps", sent, "bytes_from_vps", received, "duration", time.Since(start))
	wg.Wait()
	return true
}

// directTCPIP is the payload of a direct-tcpip channel open (RFC 4254 7.2).
type directTCPIP struct {
	Host       string
	Port       uint32
	OriginHost string
	OriginPort uint32
}

// openDirect checks a direct-tcpip request (the host must be a task ID;
// the port is ignored: the VPS's sshd is always the target) and the
// client's key against the accounts as they are now (a key removed from its
// account since the connection was authenticated no longer opens
// anything), and only then connects to the VPS.
func (s *Server) openDirect(nc ssh.NewChannel, perms *ssh.Permissions) (net.Conn, int64, *TunnelError) {
	var req directTCPIP
	if err := ssh.Unmarshal(nc.ExtraData(), &req); err != nil {
		return nil, 0, refuse(ErrBadRequest, err, "Invalid request format.")
	}
	id, ok := jumpTaskID(req.Host)
	if !ok {
		return nil, 0, refuse(ErrBadRequest, fmt.Errorf("host %q", req.Host), "Invalid task ID format.")
	}
	t, terr := s.resolve(id)
	if terr != nil {
		return nil, id, terr
	}
	if perms.Extensions[extAdmin] != "1" {
		key, err := ssh.ParsePublicKey([]byte(perms.Extensions[extKey]))
		if err != nil || !s.keyMayReach(key, t) {
			return nil, id, refuse(ErrKeyNotAuthorized, err, "Permission denied: the key is not authorized for VPS task %d.", id)
		}
	}
	up, terr := s.dial(t)
	return up, id, terr
}

// keyUsers names, for logs, who the connection's key stands for: the admin
// key, the accounts that registered it, or an anonymous caller.
func (s *Server) keyUsers(perms *ssh.Permissions) string {
	if perms.Extensions[extAdmin] == "1" {
		return "admin key"
	}
	key, err := ssh.ParsePublicKey([]byte(perms.Extensions[extKey]))
	if err != nil {
		return "?"
	}
	var names []string
	for _, c := range s.cfg.Accounts.KeyCallers(key) {
		names = append(names, c.String())
	}
	if len(names) == 0 {
		return "anonymous"
	}
	return strings.Join(names, ",")
}

// jumpTaskID parses the host of a direct-tcpip request. Besides a decimal
// task ID it accepts the dotted IPv4 form OpenSSH turns a small numeric host
// into ("ssh root@42" asks for "0.0.0.42": the client canonicalises what
// inet_aton accepts as an address), read back as a 32-bit number.
func jumpTaskID(host string) (int64, bool) {
	if id, ok := ParseTaskID(host); ok {
		return id, true
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if ip, err := netip.ParseAddr(host); err == nil && ip.Is4() {
		b := ip.As4()
		return int64(binary.BigEndian.Uint32(b[:])), true
	}
	return 0, false
}

// rejectType maps a refusal to an SSH channel-open failure code.
func rejectType(terr *TunnelError) ssh.RejectionReason {
	if errors.Is(terr, ErrKeyNotAuthorized) {
		return ssh.Prohibited
	}
	return ssh.ConnectionFailed
}
