// Package certs is the TLS of a HakuRiver cluster: a small certificate
// authority ("hakuriver tls init"), per-node certificates signed by it, and
// the tls.Config values hosts, runners, Raft and clients build from the
// files.
//
// Every node certificate is good for both server and client authentication,
// so one certificate serves a node's API and authenticates it to its peers
// (Raft requires and verifies client certificates against the CA).
package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"time"
)

// File names that Init writes in its directory.
const (
	CAFile    = "ca.pem"
	CAKeyFile = "ca-key.pem"
)

// Validity of what Init issues.
const (
	caValidity   = 10 * 365 * 24 * time.Hour
	nodeValidity = 5 * 365 * 24 * time.Hour
)

// nodeName is what a node name may hold: it becomes a file name and a DNS SAN.
var nodeName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`) })

// CertFile and KeyFile name the files of node name in Init's directory.
func CertFile(name string) string { return name + ".pem" }

// KeyFile names the private key file of node name in Init's directory.
func KeyFile(name string) string { return name + "-key.pem" }

// InitOptions say what Init issues.
type InitOptions struct {
	// Nodes get one certificate each; every name is also a DNS SAN.
	Nodes []string
	// IPs and DNS are extra SANs of every node certificate issued by this
	// call; 127.0.0.1, ::1 and localhost are always included.
	IPs []net.IP
	DNS []string
	// Now is the issue time (zero: time.Now()).
	Now time.Time
}

// InitResult lists what Init did.
type InitResult struct {
	// CA is the CA certificate file; CACreated says whether this call made it.
	CA        string `json:"ca_file"`
	CACreated bool   `json:"ca_created"`
	// Written lists every file this call wrote, in order.
	Written []string `json:"written"`
	// Nodes maps each node name to its certificate and key files.
	Nodes []NodeFiles `json:"nodes"`
}

// NodeFiles are the certificate and key files of one node.
type NodeFiles struct {
	Name string `json:"name"`
	Cert string `json:"cert_file"`
	Key  string `json:"key_file"`
}

// Init makes the CA in dir when it has none (ca.pem, ca-key.pem) and a
// certificate and key per node signed by it (NAME.pem, NAME-key.pem). An
// existing CA is reused, never replaced; an existing node certificate is
// replaced. Keys are written with mode 0600, the directory is created 0700.
func Init(dir string, o InitOptions) (InitResult, error) {
	if len(o.Nodes) == 0 {
		return InitResult{}, errors.New("tls init: name at least one node")
	}
	seen := map[string]bool{}
	for _, n := range o.Nodes {
		if !nodeName().MatchString(n) || n == "ca" {
			return InitResult{}, fmt.Errorf("tls init: node %q: want letters, digits, '.', '_' or '-' (at most 63), not \"ca\"", n)
		}
		if seen[n] {
			return InitResult{}, fmt.Errorf("tls init: node %q named twice", n)
		}
		seen[n] = true
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return InitResult{}, fmt.Errorf("tls init: create %s: %w", dir, err)
	}
	res := InitResult{CA: filepath.Join(dir, CAFile)}
	ca, caKey, err := loadCA(dir)
	switch {
	case errors.Is(err, errNoCA):
		if ca, caKey, err = newCA(o.Now); err != nil {
			return InitResult{}, err
		}
		if err := writeKey(filepath.Join(dir, CAKeyFile), caKey); err != nil {
			return InitResult{}, err
		}
		if err := writeCert(res.CA, ca.Raw); err != nil {
			return InitResult{}, err
		}
		res.CACreated = true
		res.Written = append(res.Written, filepath.Join(dir, CAKeyFile), res.CA)
	case err != nil:
		return InitResult{}, err
	}
	for _, n := range o.Nodes {
		der, key, err := newNode(n, ca, caKey, o)
		if err != nil {
			return InitResult{}, err
		}
		nf := NodeFiles{Name: n, Cert: filepath.Join(dir, CertFile(n)), Key: filepath.Join(dir, KeyFile(n))}
		if err := writeKey(nf.Key, key); err != nil {
			return InitResult{}, err
		}
		if err := writeCert(nf.Cert, der); err != nil {
			return InitResult{}, err
		}
		res.Written = append(res.Written, nf.Key, nf.Cert)
		res.Nodes = append(res.Nodes, nf)
	}
	return res, nil
}

func serial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("certificate serial: %w", err)
	}
	return s, nil
}

func newCA(now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("tls init: CA key: %w", err)
	}
	sn, err := serial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: "HakuRiver cluster CA", Organization: []string{"HakuRiver"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("tls init: sign CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("tls init: parse CA: %w", err)
	}
	return cert, key, nil
}

func newNode(name string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, o InitOptions) ([]byte, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("tls init: key of %s: %w", name, err)
	}
	sn, err := serial()
	if err != nil {
		return nil, nil, err
	}
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	for _, ip := range o.IPs {
		if !containsIP(ips, ip) {
			ips = append(ips, ip)
		}
	}
	dns := []string{name, "localhost"}
	for _, d := range o.DNS {
		if !containsString(dns, d) {
			dns = append(dns, d)
		}
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: name, Organization: []string{"HakuRiver"}},
		NotBefore:    o.Now.Add(-time.Hour),
		NotAfter:     o.Now.Add(nodeValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     dns,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("tls init: sign certificate of %s: %w", name, err)
	}
	return der, key, nil
}

func containsIP(list []net.IP, ip net.IP) bool {
	for _, v := range list {
		if v.Equal(ip) {
			return true
		}
	}
	return false
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// errNoCA says a directory holds no CA at all.
var errNoCA = errors.New("no CA")

// loadCA reads the CA of dir; a missing pair is errNoCA, half a pair
// another error.
func loadCA(dir string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	certPEM, cerr := os.ReadFile(filepath.Join(dir, CAFile))
	keyPEM, kerr := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if errors.Is(cerr, os.ErrNotExist) && errors.Is(kerr, os.ErrNotExist) {
		return nil, nil, errNoCA
	}
	if cerr != nil || kerr != nil {
		return nil, nil, fmt.Errorf("tls init: read the CA in %s (need both %s and %s): %v", dir, CAFile, CAKeyFile, errors.Join(cerr, kerr))
	}
	cb, _ := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, nil, fmt.Errorf("tls init: %s: no PEM certificate", filepath.Join(dir, CAFile))
	}
	ca, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("tls init: parse %s: %w", filepath.Join(dir, CAFile), err)
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, nil, fmt.Errorf("tls init: %s: no PEM key", filepath.Join(dir, CAKeyFile))
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("tls init: parse %s: %w", filepath.Join(dir, CAKeyFile), err)
	}
	if !key.PublicKey.Equal(ca.PublicKey) {
		return nil, nil, fmt.Errorf("tls init: %s does not belong to %s", CAKeyFile, CAFile)
	}
	return ca, key, nil
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("tls init: encode key %s: %w", path, err)
	}
	return writeFile(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
}

func writeCert(path string, der []byte) error {
	return writeFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

// writeFile replaces path atomically with data at mode perm.
func writeFile(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("tls init: write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) //nolint:errcheck // gone after the rename
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return fmt.Errorf("tls init: chmod %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("tls init: write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("tls init: write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("tls init: write %s: %w", path, err)
	}
	return nil
}

// Bundle is a node's loaded TLS material: its certificate and the CA pool
// its peers are verified against. It is immutable; its methods return fresh
// tls.Config values.
type Bundle struct {
	cert tls.Certificate
	pool *x509.CertPool
}

// Load reads a node's certificate, key and CA files. It refuses a key file
// that other users may read or write (mode bits 0007).
func Load(certFile, keyFile, caFile string) (*Bundle, error) {
	if certFile == "" || keyFile == "" || caFile == "" {
		return nil, errors.New("tls: cert_file, key_file and ca_file must all be set")
	}
	st, err := os.Stat(keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: key_file: %w", err)
	}
	if st.Mode().Perm()&0o007 != 0 {
		return nil, fmt.Errorf("tls: key_file %s is accessible to other users (mode %04o): chmod 600 it", keyFile, st.Mode().Perm())
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: load %s and %s: %w", certFile, keyFile, err)
	}
	pool, err := LoadCA(caFile)
	if err != nil {
		return nil, err
	}
	return &Bundle{cert: cert, pool: pool}, nil
}

// LoadCA reads a PEM file of CA certificates into a pool.
func LoadCA(caFile string) (*x509.CertPool, error) {
	b, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("tls: read CA %s: %w", caFile, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("tls: CA %s: no PEM certificate", caFile)
	}
	return pool, nil
}

// ClientTLS returns the client config of a caller that holds only the CA
// file (the CLI): it verifies servers against it.
func ClientTLS(caFile string) (*tls.Config, error) {
	pool, err := LoadCA(caFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// Server returns the config of an API server (HTTPS): it presents the
// node's certificate; callers authenticate with tokens, not certificates.
func (b *Bundle) Server() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{b.cert}, MinVersion: tls.VersionTLS12}
}

// Client returns the config of a node calling a peer: it verifies the peer
// against the CA and presents the node's certificate when asked.
func (b *Bundle) Client() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{b.cert}, RootCAs: b.pool, MinVersion: tls.VersionTLS12}
}

// Mutual returns the config of a listener that only peers may use (Raft):
// it presents the node's certificate, requires a client certificate signed
// by the CA, and verifies dialled peers against the CA.
func (b *Bundle) Mutual() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{b.cert},
		RootCAs:      b.pool,
		ClientCAs:    b.pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS13,
	}
}

// Verify checks the node's certificate at now: signed by the CA, valid for
// both server and client authentication, and naming name (an IP address or
// a DNS name: the address others reach the node by). It returns when the
// certificate expires.
func (b *Bundle) Verify(name string, now time.Time) (notAfter time.Time, err error) {
	if len(b.cert.Certificate) == 0 {
		return time.Time{}, errors.New("no certificate")
	}
	leaf, err := x509.ParseCertificate(b.cert.Certificate[0])
	if err != nil {
		return time.Time{}, fmt.Errorf("parse the certificate: %w", err)
	}
	inter := x509.NewCertPool()
	for _, der := range b.cert.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(c)
		}
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: b.pool, Intermediates: inter, DNSName: name,
			CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			return leaf.NotAfter, err
		}
	}
	return leaf.NotAfter, nil
}
