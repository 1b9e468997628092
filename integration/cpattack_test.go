//go:build integration

package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCopyDockerTaskActsAsItsUser: `hakuriver cp` into and out of a Docker
// task that runs as alice's UID (4242) acts as that UID, not as the
// Engine's root: alice can neither read nor plant a file in a root-only
// directory of the shared directory (bind-mounted into every task at
// /shared), directly or through a link her task made, while copies into
// her own /tmp still work and belong to her UID.
func TestCopyDockerTaskActsAsItsUser(t *testing.T) {
	a := startAccessCluster(t)
	private := "hkt-private-" + uniqueSuffix()
	// <shared_dir>/shared_data is bind-mounted at /shared in every task.
	host := filepath.Join(a.c.SharedDir(), "shared_data", private)
	if err := os.MkdirAll(host, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(host) })
	marker := "root-only-" + uniqueSuffix()
	if err := os.WriteFile(filepath.Join(host, "secret"), []byte(marker), 0o600); err != nil {
		t.Fatal(err)
	}
	id := a.dockerTask(t, "ln -s /shared/"+private+" /tmp/link && sleep 600")
	out := accessibleDir(t, "out")
	for i, src := range []string{"/shared/" + private + "/secret", "/tmp/link/secret", "/shared/" + private} {
		got := filepath.Join(out, fmt.Sprint("got", i))
		r := a.cpAs(a.alice, id+":"+src, got)
		if r.Code == 0 || !strings.Contains(r.Stderr, "HTTP 403") {
			t.Errorf("cp %s out of alice's task (uid %d): want HTTP 403, got %s", src, accessUnixUser, r)
		}
		if b, err := os.ReadFile(got); err == nil || strings.Contains(string(b), marker) {
			t.Errorf("cp %s out of alice's task wrote %q", src, b)
		}
	}
	plant := filepath.Join(accessibleDir(t, "plant"), "planted")
	if err := os.WriteFile(plant, []byte("planted\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, dst := range []string{"/shared/" + private + "/planted", "/tmp/link/planted", "/shared/" + private} {
		if r := a.cpAs(a.alice, plant, id+":"+dst); r.Code == 0 || !strings.Contains(r.Stderr, "HTTP 403") {
			t.Errorf("cp into %s in alice's task: want HTTP 403, got %s", dst, r)
		}
	}
	if _, err := os.Stat(filepath.Join(host, "planted")); err == nil {
		t.Errorf("a refused copy planted %s", filepath.Join(host, "planted"))
	}
	// Her own files: copied in as her UID and back.
	if r := a.cpAs(a.alice, plant, id+":/tmp/mine"); r.Code != 0 {
		t.Fatalf("cp into /tmp/mine: %s", r)
	}
	if r := a.cpAs(a.alice, id+":/tmp/mine", filepath.Join(out, "mine")); r.Code != 0 {
		t.Fatalf("cp /tmp/mine out: %s", r)
	}
	if b, err := os.ReadFile(filepath.Join(out, "mine")); err != nil || string(b) != "planted\n" {
		t.Errorf("/tmp/mine copied back: %q, %v", b, err)
	}
}
