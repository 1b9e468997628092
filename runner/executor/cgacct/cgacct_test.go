package cgacct

import (
	"os"
	"path/filepath"
	"testing"
)

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestReadFiles checks the parsing of the kernel's files on v1 (with and
// without usage_user/usage_sys) and v2, and that garbage is an error.
func TestReadFiles(t *testing.T) {
	acct, mem := t.TempDir(), t.TempDir()
	write(t, acct, "cpuacct.usage_user", "1500000000\n")
	write(t, acct, "cpuacct.usage_sys", "250000000\n")
	write(t, mem, "memory.max_usage_in_bytes", "209715200\n")
	if f, err := ReadV1(acct, mem); err != nil || f != (Figures{UserNs: 1.5e9, SystemNs: 2.5e8, PeakBytes: 200 << 20}) {
		t.Fatalf("v1: %+v %v", f, err)
	}
	old := t.TempDir() // a kernel before usage_user: cpuacct.stat in USER_HZ
	write(t, old, "cpuacct.stat", "user 150\nsystem 25\n")
	if f, err := ReadV1(old, ""); err != nil || f.UserNs != 1.5e9 || f.SystemNs != 2.5e8 {
		t.Fatalf("v1 cpuacct.stat: %+v %v", f, err)
	}
	v2 := t.TempDir()
	write(t, v2, "cpu.stat", "usage_usec 1750000\nuser_usec 1500000\nsystem_usec 250000\n")
	write(t, v2, "memory.peak", "209715200\n")
	if f, err := ReadV2(v2); err != nil || f != (Figures{UserNs: 1.5e9, SystemNs: 2.5e8, PeakBytes: 200 << 20}) {
		t.Fatalf("v2: %+v %v", f, err)
	}
	bad := t.TempDir()
	write(t, bad, "cpuacct.usage_user", "-5\n")
	write(t, bad, "cpuacct.usage_sys", "x\n")
	if _, err := ReadV1(bad, bad); err == nil {
		t.Fatal("v1 with garbage: no error")
	}
	if _, err := ReadV2(bad); err == nil {
		t.Fatal("v2 without cpu.stat: no error")
	}
}
