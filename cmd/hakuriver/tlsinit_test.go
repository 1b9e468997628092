package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// runTLSRoot runs the full CLI with args.
func runTLSRoot(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	root := newRootCmd()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	return out.String(), err
}

func TestTLSInitCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	out, err := runTLSRoot(t, "tls", "init", "--dir", dir, "--node", "h1,h2", "--ip", "10.0.0.5", "--dns", "h1.lab", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		CA        string   `json:"ca_file"`
		CACreated bool     `json:"ca_created"`
		Written   []string `json:"written"`
		Nodes     []struct {
			Name, Cert, Key string
		} `json:"nodes"`
	}
	mustJSON(t, out, &res)
	want := []string{"ca-key.pem", "ca.pem", "h1-key.pem", "h1.pem", "h2-key.pem", "h2.pem"}
	if !res.CACreated || len(res.Written) != len(want) || len(res.Nodes) != 2 {
		t.Fatalf("result %+v", res)
	}
	for i, f := range want {
		if res.Written[i] != filepath.Join(dir, f) {
			t.Errorf("written[%d] = %s, want %s", i, res.Written[i], filepath.Join(dir, f))
		}
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(f, "-key.pem") && st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", f, st.Mode().Perm())
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, "h2.pem"))
	blk, _ := pem.Decode(b)
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := cert.VerifyHostname("10.0.0.5"); err != nil {
		t.Errorf("--ip not in the certificate: %v", err)
	}
	if err := cert.VerifyHostname("h1.lab"); err != nil {
		t.Errorf("--dns not in the certificate: %v", err)
	}

	// Again: the CA stays, a runner certificate is added.
	caBefore, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	out, err = runTLSRoot(t, "tls", "init", "--dir", dir, "--node", "r1")
	if err != nil {
		t.Fatal(err)
	}
	caAfter, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if !bytes.Equal(caBefore, caAfter) || !strings.Contains(out, "using existing CA") || !strings.Contains(out, "node r1") {
		t.Fatalf("second run replaced the CA or said %q", out)
	}

	for _, args := range [][]string{
		{"tls", "init", "--node", "h1"},                               // no --dir
		{"tls", "init", "--dir", dir},                                 // no --node
		{"tls", "init", "--dir", dir, "--node", "h1", "--ip", "nope"}, // bad --ip
		{"tls", "init", "--dir", dir, "--node", "../evil"},            // a path as a node
		{"tls", "init", "--dir", dir, "--node", "h1", "-o", "yaml"},   // bad --output
	} {
		if _, err := runTLSRoot(t, args...); err == nil {
			t.Errorf("%q: accepted", args)
		}
	}
}

func TestProxyTLSFollowsTheHostScheme(t *testing.T) {
	dir := t.TempDir()
	if _, err := runTLSRoot(t, "tls", "init", "--dir", dir, "--node", "h1"); err != nil {
		t.Fatal(err)
	}
	t.Setenv(caFileEnv, "")
	g := &clientFlags{hosts: []string{"http://127.0.0.1:8000"}, caFile: filepath.Join(dir, "ca.pem")}
	if cfg, err := g.proxyTLS(); err != nil || cfg != nil {
		t.Fatalf("http cluster: %v, %v; want plain", cfg, err)
	}
	g.hosts = []string{"https://127.0.0.1:8000"}
	cfg, err := g.proxyTLS()
	if err != nil || cfg == nil || cfg.RootCAs == nil {
		t.Fatalf("https cluster with --ca-file: %+v, %v", cfg, err)
	}
	g.caFile = ""
	if cfg, err = g.proxyTLS(); err != nil || cfg == nil || cfg.RootCAs != nil {
		t.Fatalf("https cluster without a CA: %+v, %v; want the system roots", cfg, err)
	}
	g.caFile = filepath.Join(dir, "missing.pem")
	if _, err := g.proxyTLS(); err == nil {
		t.Fatal("a missing --ca-file was accepted")
	}
}

var caExportRE = regexp.MustCompile(`export HAKURIVER_HOST=(\S+) HAKURIVER_TOKEN_FILE=\S+ HAKURIVER_TOKEN=(\S+) HAKURIVER_CA_FILE=(\S+)`)

// TestDevWithTLS: `hakuriver dev --tls` serves https:// replicas whose
// export line names the CA; a client with it gets through, one without it
// does not.
func TestDevWithTLS(t *testing.T) {
	useTokenStore(t)
	t.Setenv(caFileEnv, "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &syncBuffer{}
	root := newRootCmd()
	root.SetOut(out)
	root.SetErr(out)
	root.SetArgs([]string{"dev", "--tls", "--replicas", "1", "--runners", "1", "--api-port", fmt.Sprint(freeDevPort(t)),
		"--data-dir", t.TempDir(), "--log-level", "error"})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Errorf("dev did not stop")
		}
	})
	var m []string
	deadline := time.Now().Add(30 * time.Second)
	for m == nil && time.Now().Before(deadline) {
		m = caExportRE.FindStringSubmatch(out.String())
		time.Sleep(50 * time.Millisecond)
	}
	if m == nil {
		t.Fatalf("no export line with HAKURIVER_CA_FILE:\n%s", out)
	}
	host, admin, ca := m[1], m[2], m[3]
	if !strings.HasPrefix(host, "https://") || !strings.Contains(out.String(), "runner  dev-runner-1  api https://") {
		t.Fatalf("dev --tls printed %q", out)
	}
	if _, _, err := runRoot(t, "", "--host", host, "--token", admin, "--ca-file", ca, "auth", "whoami"); err != nil {
		t.Fatalf("whoami with the CA: %v", err)
	}
	if _, _, err := runRoot(t, "", "--host", host, "--token", admin, "--timeout", "3s", "auth", "whoami"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("whoami without the CA: %v, want a certificate error", err)
	}
}
