package runner_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/ops/certs"
	"github.com/hakuriver/hakuriver-ha/runner/filecopy"
)

// TestTaskAccessOverTLS runs a host replica and a runner over HTTPS: a
// forward stream to a native task's port echoes through both TLS hops and
// passes a half-close; a 0600 file copied into the task's directory and
// back keeps its mode and content; the runner's own task access endpoints
// refuse a caller without the cluster token.
func TestTaskAccessOverTLS(t *testing.T) {
	shim := shimBinary(t)
	dir := t.TempDir()
	if _, err := certs.Init(dir, certs.InitOptions{Nodes: []string{"h1", "r1"}}); err != nil {
		t.Fatal(err)
	}
	bundle := func(n string) *certs.Bundle {
		b, err := certs.Load(filepath.Join(dir, certs.CertFile(n)), filepath.Join(dir, certs.KeyFile(n)), filepath.Join(dir, certs.CAFile))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	shared := t.TempDir()
	h := startTestHost(t, shared, bundle("h1"))
	tmp, state := t.TempDir(), t.TempDir()
	a := startNativeRunner(t, h, []string{shim, "runner-shim"}, shared, state, tmp, "hakuriver-access-test", bundle("r1"))
	t.Cleanup(func() { a.Close(context.Background()) })
	tc, err := certs.ClientTLS(filepath.Join(dir, certs.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	cc := api.DefaultClientConfig()
	cc.Hosts, cc.TLS = []string{h.APIURL()}, tc
	c, err := api.NewClient(cc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for !a.Registered() && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	work := t.TempDir()
	null := "NULL"
	sr, err := c.Submit(ctx, api.SubmitRequest{Command: "sleep", Arguments: []string{"60"}, ContainerName: &null, WorkDir: work})
	if err != nil {
		t.Fatal(err)
	}
	id := sr.TaskIDs[0]
	t.Cleanup(func() { c.Kill(context.Background(), id) })
	for ctx.Err() == nil {
		if tk, err := c.Status(ctx, id); err == nil && tk.Status == "running" {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The task's "port": an echo server on this machine (a native task's
	// ports are the runner host's).
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		conn, err := echo.Accept()
		if err != nil {
			return
		}
		io.Copy(conn, conn)
		conn.Close()
	}()
	port := echo.Addr().(*net.TCPAddr).Port
	conn, err := api.StreamDialer{TLS: tc}.DialStream(ctx, h.APIURL(), fmt.Sprintf("/api/task/%s/forward?port=%d", id, port))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	io.WriteString(conn, "ping over two TLS hops")
	conn.(interface{ CloseWrite() error }).CloseWrite()
	if b, err := io.ReadAll(conn); err != nil || string(b) != "ping over two TLS hops" {
		t.Fatalf("echo %q, %v", b, err)
	}

	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
	src := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(src, []byte("s3cret"), 0o600); err != nil {
		t.Fatal(err)
	}
	var tarball bytes.Buffer
	if err := filecopy.Archive(&tarball, src, ""); err != nil {
		t.Fatal(err)
	}
	files := h.APIURL() + "/api/task/" + id + "/files?path=copied"
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, files, &tarball)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT files: HTTP %d", resp.StatusCode)
	}
	if fi, err := os.Stat(filepath.Join(work, "copied")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("copied into the working directory: %v %v, want mode 0600", fi, err)
	}
	resp, err = hc.Get(files)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	tr := tar.NewReader(resp.Body)
	hdr, err := tr.Next()
	if err != nil || hdr.Name != "copied" || hdr.Mode&0o777 != 0o600 {
		t.Fatalf("GET files: %+v %v", hdr, err)
	}
	if b, _ := io.ReadAll(tr); string(b) != "s3cret" {
		t.Fatalf("GET files: content %q", b)
	}

	// The runner's endpoints need the cluster token.
	runnerClient := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: tc.RootCAs}}}
	for _, u := range []string{"/tasks/" + id + "/files?path=/etc/passwd", fmt.Sprintf("/tasks/%s/forward?port=%d", id, port)} {
		resp, err := runnerClient.Get(a.URL() + u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s without the cluster token: HTTP %d, want 401", u, resp.StatusCode)
		}
	}
}
