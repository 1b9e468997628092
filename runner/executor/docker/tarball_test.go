package docker

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/mount"

	"github.com/hakuriver/hakuriver-ha/ops/environment"
)

// These tests need no Docker Engine.

func TestPruneTarballs(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"torch-100.tar", "torch-300.tar", "torch-200.tar", "my-env.v2-50.tar"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Keeping 1 up to version 200: 300 is from the future, 100 too old.
	removed, err := pruneTarballs(dir, "torch", 1, 200)
	if err != nil || !reflect.DeepEqual(removed, []string{filepath.Join(dir, "torch-300.tar"), filepath.Join(dir, "torch-100.tar")}) {
		t.Fatalf("pruneTarballs = %v %v", removed, err)
	}
	all, err := environment.ListTarballs(dir)
	if err != nil || len(all["torch"]) != 1 || all["torch"][0].Version != 200 {
		t.Fatalf("after pruning: %+v %v", all, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "my-env.v2-50.tar")); err != nil {
		t.Fatal("pruning torch touched another environment")
	}
}

func TestContainerConfigMapping(t *testing.T) {
	cfg, err := testConfig(t).normalize()
	if err != nil {
		t.Fatal(err)
	}
	cfg.StateDir = t.TempDir()
	e := &Executor{cfg: cfg}
	data := filepath.Join(cfg.SharedDir, "shared_data")
	for in, want := range map[string]string{
		"":                        "/shared",
		data:                      "/shared",
		filepath.Join(data, "a"):  "/shared/a",
		"/work":                   "/work",
		filepath.Dir(data) + "/x": filepath.Dir(data) + "/x",
	} {
		if got := e.workDir(in); got != want {
			t.Errorf("workDir(%q) = %q, want %q", in, got, want)
		}
	}

	extra := t.TempDir()
	// Without privileged rights only shared_dir, local_temp_dir and the
	// admin's configured sources may be bind-mounted.
	for _, m := range []string{"/:/host", "/var/run:/run/host", extra + ":/data"} {
		bad := taskSpec(cfg, 9, "img", "true")
		bad.Mounts = []string{m}
		if _, _, err := e.containerConfig(bad); err == nil || !strings.Contains(err.Error(), "host path") {
			t.Fatalf("mount %s without privileged rights: %v", m, err)
		}
	}
	e.cfg.AllowedMountSources = []string{extra}
	c, hc, err := e.containerConfig(taskSpec(cfg, 7, "img", "python", "x.py", "--flag"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual([]string(c.Cmd), []string{"python", "x.py", "--flag"}) || c.Labels[LabelTaskID] != "7" || c.Labels[LabelRole] != roleTask {
		t.Fatalf("config %+v", c)
	}
	if hc.NanoCPUs != 0 || hc.Memory != 0 || hc.MemorySwap != 0 || len(hc.DeviceRequests) != 0 || !reflect.DeepEqual([]string(hc.CapAdd), []string{"SYS_NICE"}) {
		t.Fatalf("unlimited task got limits: %+v", hc.Resources)
	}
	s := taskSpec(cfg, 8, "img", "true")
	s.Cores, s.MemoryBytes, s.GPUs, s.CPUs, s.Mems = 2, 1<<30, []int{1, 3}, []int{0, 1}, []int{0}
	s.Env = map[string]string{"CUDA_VISIBLE_DEVICES": "1,3", "A": "b"}
	s.Mounts = []string{extra + ":/data", extra + ":/ro:ro"}
	c, hc, err = e.containerConfig(s)
	if err != nil {
		t.Fatal(err)
	}
	if hc.NanoCPUs != 2e9 || hc.Memory != 1<<30 || hc.MemorySwap != 1<<30 || hc.CpusetCpus != "0,1" || hc.CpusetMems != "0" {
		t.Fatalf("limits %+v", hc.Resources)
	}
	if len(hc.DeviceRequests) != 1 || !reflect.DeepEqual(hc.DeviceRequests[0].DeviceIDs, []string{"1", "3"}) {
		t.Fatalf("device requests %+v", hc.DeviceRequests)
	}
	wantEnv := []string{"A=b", "HAKURIVER_LOCAL_TEMP_DIR=/local_temp", "HAKURIVER_SHARED_DIR=/shared"}
	if !reflect.DeepEqual(c.Env, wantEnv) {
		t.Fatalf("env %v, want %v", c.Env, wantEnv)
	}
	wantMounts := []mount.Mount{
		{Type: mount.TypeBind, Source: data, Target: "/shared"},
		{Type: mount.TypeBind, Source: cfg.LocalTempDir, Target: "/local_temp"},
		{Type: mount.TypeBind, Source: extra, Target: "/data"},
		{Type: mount.TypeBind, Source: extra, Target: "/ro", ReadOnly: true},
	}
	if !reflect.DeepEqual(hc.Mounts, wantMounts) {
		t.Fatalf("mounts %+v", hc.Mounts)
	}
	s.Privileged = true
	if _, _, err := e.containerConfig(s); !errors.Is(err, environment.ErrInvalid) {
		t.Fatalf("privileged without permission: %v", err)
	}
	e.cfg.AllowPrivileged = true
	if _, hc, err := e.containerConfig(s); err != nil || !hc.Privileged || len(hc.CapAdd) != 0 {
		t.Fatalf("privileged with permission: %v %+v", err, hc)
	}
}

func TestStampedWriterSkipsCopiedEntries(t *testing.T) {
	e := &Executor{cfg: Config{StateDir: t.TempDir()}, log: testLogger(t)}
	tk := &task{id: 1}
	var out bytesBuffer
	w := &stampedWriter{e: e, t: tk, w: &out, last: &tk.st.Stdout}
	frames := []string{
		"2026-01-02T03:04:05.000000001Z one\n",
		"2026-01-02T03:04:05.000000002Z two\n",
		"2026-01-02T03:04:05.000000002Z two again (same time: taken as copied)\n",
		"2026-01-02T03:04:05.000000001Z older\n",
		"no timestamp\n",
		"2026-01-02T03:04:06Z partial",
	}
	for _, f := range frames {
		if n, err := w.Write([]byte(f)); err != nil || n != len(f) {
			t.Fatalf("Write(%q) = %d, %v", f, n, err)
		}
	}
	if got, want := out.String(), "one\ntwo\nno timestamp\npartial"; got != want {
		t.Fatalf("written %q, want %q", got, want)
	}
	if e.loadState(1).Stdout == 0 {
		t.Fatal("position not saved")
	}
}

// bytesBuffer is a minimal io.Writer collecting bytes.
type bytesBuffer struct{ b []byte }

func (b *bytesBuffer) Write(p []byte) (int, error) { b.b = append(b.b, p...); return len(p), nil }
func (b *bytesBuffer) String() string              { return string(b.b) }

// TestVerifyingReader checks that a stream whose hash does not match
// never hands out its last bytes, and that a matching one passes whole.
func TestVerifyingReader(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 50000) // 800 KB
	got, err := io.ReadAll(newVerifyingReader(bytes.NewReader(data), sha256Hex(data)))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("matching stream: %d bytes, %v", len(got), err)
	}
	var out bytes.Buffer
	_, err = io.Copy(&out, newVerifyingReader(bytes.NewReader(data), sha256Hex([]byte("other"))))
	if !errors.Is(err, environment.ErrInvalid) || out.Len() > len(data)-holdBack {
		t.Fatalf("mismatching stream: %d of %d bytes handed out, %v", out.Len(), len(data), err)
	}
	small := []byte("tiny")
	out.Reset()
	if _, err := io.Copy(&out, newVerifyingReader(bytes.NewReader(small), sha256Hex([]byte("x")))); err == nil || out.Len() != 0 {
		t.Fatalf("small mismatching stream: %d bytes handed out, %v", out.Len(), err)
	}
}
