package runner_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/ops/certs"
)

// TestAgentOverTLS runs a host replica and a runner with certificates of
// one CA: the runner serves its API over HTTPS only and advertises it as
// https://, registers and reports to the host over HTTPS, and a task the
// host dispatches to it completes.
func TestAgentOverTLS(t *testing.T) {
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
	ctx := context.Background()
	tmp, state := t.TempDir(), t.TempDir()
	a := startNativeRunner(t, h, []string{shim, "runner-shim"}, shared, state, tmp, "hakuriver-tls-test", bundle("r1"))
	t.Cleanup(func() { a.Close(context.Background()) })
	if !strings.HasPrefix(a.URL(), "https://") {
		t.Fatalf("runner advertises %s, want https://", a.URL())
	}

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
	deadline := time.Now().Add(20 * time.Second)
	for !a.Registered() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !a.Registered() {
		t.Fatal("the runner never registered over https")
	}
	null := "NULL"
	sr, err := c.Submit(ctx, api.SubmitRequest{Command: "sh", Arguments: []string{"-c", "echo over-tls-$HAKURIVER_TASK_ID"}, ContainerName: &null})
	if err != nil {
		t.Fatal(err)
	}
	id := sr.TaskIDs[0]
	var tk api.Task
	for time.Now().Before(deadline.Add(10 * time.Second)) {
		if tk, err = c.Status(ctx, id); err == nil && tk.Status == "completed" {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if tk.Status != "completed" || tk.AssignedNode != "r1" {
		t.Fatalf("task %s: %+v (%v)", id, tk, err)
	}
	out, err := os.ReadFile(filepath.Join(shared, "task_outputs", id+".out"))
	if err != nil || strings.TrimSpace(string(out)) != "over-tls-"+id {
		t.Fatalf("output %q, %v", out, err)
	}

	// The runner API answers nothing over plain HTTP.
	plain := "http://" + strings.TrimPrefix(a.URL(), "https://")
	if resp, err := http.Get(plain + "/health"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("plain HTTP to the runner API: %d", resp.StatusCode)
		}
	}
}
