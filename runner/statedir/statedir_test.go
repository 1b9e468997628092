package statedir

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/hakuriver/hakuriver-ha/ops/doctor"
)

func TestOpenCreatesPrivateDirAndLocks(t *testing.T) {
	base := t.TempDir()
	path := filepath.Join(base, "state")
	d, err := Open(path, Area{"local_temp_dir", filepath.Join(base, "temp")}, Area{"shared_dir", filepath.Join(base, "shared")})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o700 {
		t.Fatalf("state dir: %v, %v (want mode 0700)", info, err)
	}
	if c := Doctor(path, true); c.Status != doctor.StatusOK {
		t.Errorf("doctor while held: %+v", c)
	}
	if c := Doctor(path, false); c.Status != doctor.StatusFail || !strings.Contains(c.Measured, strconv.Itoa(os.Getpid())) {
		t.Errorf("doctor --local while a runner holds it: %+v", c)
	}
	// A second runner on the same directory is refused, naming it and the
	// holder.
	_, err = Open(path)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("second Open: %v, want ErrLocked naming %s and pid %d", err, path, os.Getpid())
	}
	id1, err := d.InstanceID()
	if err != nil {
		t.Fatal(err)
	}
	if id2, _ := d.InstanceID(); id2 != id1 {
		t.Errorf("InstanceID changed: %s then %s", id1, id2)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if held, _, err := Holder(path); held || err != nil {
		t.Errorf("after Close: held=%v err=%v", held, err)
	}
	if c := Doctor(path, true); c.Status != doctor.StatusFail {
		t.Errorf("doctor of a running runner whose lock is not held: %+v", c)
	}
}

func TestOpenTightensMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o777); err != nil {
		t.Fatal(err)
	}
	if c := Doctor(path, false); c.Status != doctor.StatusFail || !strings.Contains(c.Measured, "0777") {
		t.Errorf("doctor of a 0777 state dir: %+v", c)
	}
	d, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if info, _ := os.Stat(path); info.Mode().Perm() != 0o700 {
		t.Errorf("mode %v after Open, want 0700", info.Mode().Perm())
	}
}

func TestOpenRefusesOverlap(t *testing.T) {
	base := t.TempDir()
	temp, shared := filepath.Join(base, "temp"), filepath.Join(base, "shared")
	if err := os.Symlink(temp, filepath.Join(base, "alias")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(temp, 0o755); err != nil {
		t.Fatal(err)
	}
	areas := []Area{{"local_temp_dir", temp}, {"shared_dir", shared}}
	for _, tc := range []struct{ path, key string }{
		{temp, "local_temp_dir"},
		{filepath.Join(temp, "state"), "local_temp_dir"},
		{filepath.Join(base, "alias", "state"), "local_temp_dir"},
		{filepath.Join(shared, "x", "state"), "shared_dir"},
		{base, "local_temp_dir"},
	} {
		_, err := Open(tc.path, areas...)
		if err == nil || !strings.Contains(err.Error(), "runner_state_dir") || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("Open(%s): %v, want a refusal naming runner_state_dir and %s", tc.path, err, tc.key)
		}
		if c := Doctor(tc.path, false, areas...); c.Status != doctor.StatusFail {
			t.Errorf("Doctor(%s): %+v, want fail", tc.path, c)
		}
	}
	if _, err := os.Stat(filepath.Join(temp, "state")); !os.IsNotExist(err) {
		t.Errorf("a refused state dir was created: %v", err)
	}
}
