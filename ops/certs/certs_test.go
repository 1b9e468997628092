package certs

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func parse(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestInitMakesCAAndNodeCertificates(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	res, err := Init(dir, InitOptions{Nodes: []string{"h1", "h2"}, IPs: []net.IP{net.ParseIP("10.1.2.3")}, DNS: []string{"h1.lab"}})
	if err != nil {
		t.Fatal(err)
	}
	if !res.CACreated || len(res.Nodes) != 2 || len(res.Written) != 6 {
		t.Fatalf("result %+v", res)
	}
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode: %v %v", st.Mode(), err)
	}
	for _, k := range []string{CAKeyFile, KeyFile("h1"), KeyFile("h2")} {
		st, err := os.Stat(filepath.Join(dir, k))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s mode %v, %v: want 0600", k, st.Mode(), err)
		}
	}
	ca := parse(t, filepath.Join(dir, CAFile))
	if !ca.IsCA {
		t.Fatal("CA is not a CA")
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	c := parse(t, filepath.Join(dir, CertFile("h1")))
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		for _, name := range []string{"h1", "localhost", "h1.lab", "127.0.0.1", "10.1.2.3", "::1"} {
			if _, err := c.Verify(x509.VerifyOptions{Roots: pool, DNSName: name, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
				t.Errorf("verify h1 as %q for %v: %v", name, usage, err)
			}
		}
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: pool, DNSName: "10.9.9.9"}); err == nil {
		t.Error("h1 verified for an address it does not name")
	}
}

func TestInitAgainKeepsTheCA(t *testing.T) {
	dir := t.TempDir()
	if _, err := Init(dir, InitOptions{Nodes: []string{"h1"}}); err != nil {
		t.Fatal(err)
	}
	caBefore, _ := os.ReadFile(filepath.Join(dir, CAFile))
	keyBefore, _ := os.ReadFile(filepath.Join(dir, CAKeyFile))
	res, err := Init(dir, InitOptions{Nodes: []string{"r1"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.CACreated || len(res.Written) != 2 {
		t.Fatalf("second init: %+v", res)
	}
	caAfter, _ := os.ReadFile(filepath.Join(dir, CAFile))
	keyAfter, _ := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if !bytes.Equal(caBefore, caAfter) || !bytes.Equal(keyBefore, keyAfter) {
		t.Fatal("second init replaced the CA")
	}
	pool := x509.NewCertPool()
	pool.AddCert(parse(t, filepath.Join(dir, CAFile)))
	for _, n := range []string{"h1", "r1"} {
		if _, err := parse(t, filepath.Join(dir, CertFile(n))).Verify(x509.VerifyOptions{Roots: pool, DNSName: n}); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
}

func TestInitRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	for _, nodes := range [][]string{nil, {"../x"}, {"a/b"}, {"ca"}, {"a", "a"}, {""}, {strings.Repeat("x", 64)}} {
		if _, err := Init(dir, InitOptions{Nodes: nodes}); err == nil {
			t.Errorf("nodes %q: accepted", nodes)
		}
	}
	// Half a CA (the key lost) is an error, never silently replaced.
	if _, err := Init(dir, InitOptions{Nodes: []string{"h1"}}); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, CAKeyFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := Init(dir, InitOptions{Nodes: []string{"h2"}}); err == nil {
		t.Fatal("init with a CA certificate but no CA key succeeded")
	}
}

// handshake runs a TLS exchange between server and client configs over real
// TCP and returns the client's error (handshake, then one echo).
func handshake(t *testing.T, server, client *tls.Config) error {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", server)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c) //nolint:errcheck // echo until the client leaves
	}()
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: client}
	c, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second)) //nolint:errcheck // test bound
	if _, err := c.Write([]byte("x")); err != nil {
		return err
	}
	b := make([]byte, 1)
	if _, err := io.ReadFull(c, b); err != nil {
		return err
	}
	return nil
}

func TestMutualTLSRequiresTheCA(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	if _, err := Init(dir, InitOptions{Nodes: []string{"h1", "h2"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := Init(other, InitOptions{Nodes: []string{"evil"}}); err != nil {
		t.Fatal(err)
	}
	load := func(d, n string) *Bundle {
		b, err := Load(filepath.Join(d, CertFile(n)), filepath.Join(d, KeyFile(n)), filepath.Join(d, CAFile))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	h1, h2, evil := load(dir, "h1"), load(dir, "h2"), load(other, "evil")
	if err := handshake(t, h1.Mutual(), h2.Client()); err != nil {
		t.Fatalf("peer of the same CA: %v", err)
	}
	// A client that trusts the cluster CA but presents a foreign certificate.
	foreign := evil.Client()
	foreign.RootCAs = h1.Client().RootCAs
	if err := handshake(t, h1.Mutual(), foreign); err == nil {
		t.Fatal("mutual listener accepted a certificate of another CA")
	}
	// A client without a certificate.
	noCert := h2.Client()
	noCert.Certificates = nil
	if err := handshake(t, h1.Mutual(), noCert); err == nil {
		t.Fatal("mutual listener accepted a client without a certificate")
	}
	// A client of another CA does not trust the cluster's servers.
	var uerr *tls.CertificateVerificationError
	if err := handshake(t, h1.Server(), evil.Client()); !errors.As(err, &uerr) {
		t.Fatalf("client of another CA: got %v, want a verification error", err)
	}
}

func TestLoadRefusesAKeyOthersCanRead(t *testing.T) {
	dir := t.TempDir()
	if _, err := Init(dir, InitOptions{Nodes: []string{"h1"}}); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, KeyFile("h1"))
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(filepath.Join(dir, CertFile("h1")), key, filepath.Join(dir, CAFile)); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable key: %v", err)
	}
	if err := os.Chmod(key, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(filepath.Join(dir, CertFile("h1")), key, filepath.Join(dir, CAFile)); err != nil {
		t.Fatalf("group-readable key: %v", err)
	}
	if _, err := Load(filepath.Join(dir, CertFile("h1")), key, ""); err == nil {
		t.Fatal("Load without a CA file succeeded")
	}
}

func TestBundleVerify(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	now := time.Now()
	if _, err := Init(dir, InitOptions{Nodes: []string{"h1"}, IPs: []net.IP{net.ParseIP("10.0.0.1")}, Now: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := Init(other, InitOptions{Nodes: []string{"h1"}}); err != nil {
		t.Fatal(err)
	}
	b, err := Load(filepath.Join(dir, CertFile("h1")), filepath.Join(dir, KeyFile("h1")), filepath.Join(dir, CAFile))
	if err != nil {
		t.Fatal(err)
	}
	notAfter, err := b.Verify("10.0.0.1", now)
	if err != nil || notAfter.Sub(now) < 4*365*24*time.Hour {
		t.Fatalf("Verify(10.0.0.1) = %s, %v", notAfter, err)
	}
	if _, err := b.Verify("10.0.0.2", now); err == nil {
		t.Error("verified for an address the certificate does not name")
	}
	if _, err := b.Verify("10.0.0.1", now.Add(6*365*24*time.Hour)); err == nil {
		t.Error("verified after expiry")
	}
	// The node's certificate with another cluster's CA file.
	mixed, err := Load(filepath.Join(dir, CertFile("h1")), filepath.Join(dir, KeyFile("h1")), filepath.Join(other, CAFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mixed.Verify("10.0.0.1", now); err == nil {
		t.Error("verified against a CA that did not sign it")
	}
}
