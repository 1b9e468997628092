package doctor

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServiceCheck covers the unit check: nothing without a unit file,
// no alarm where systemd does not run the machine, and each state
// `systemctl is-active` answers. systemd cannot be PID 1 here, so its
// answers come through IsActive.
func TestServiceCheck(t *testing.T) {
	const unit = "hakuriver-host.service"
	etc, lib := t.TempDir(), t.TempDir()
	asked := 0
	l := Local{ServiceUnit: unit, UnitDirs: []string{etc, lib},
		SystemdBooted: func() bool { return true },
		IsActive:      func(context.Context, string) (string, error) { asked++; return "active", nil }}
	if c, ok := l.checkService(context.Background()); ok || asked != 0 {
		t.Fatalf("no unit file: %+v asked %d", c, asked)
	}
	for _, c := range RunLocal(context.Background(), l) {
		if strings.HasPrefix(c.Name, "service") {
			t.Fatalf("RunLocal reports a service without a unit file: %+v", c)
		}
	}
	path := filepath.Join(lib, unit)
	if err := os.WriteFile(path, []byte("[Service]\nExecStart=/bin/true\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	notBooted := l
	notBooted.SystemdBooted = func() bool { return false }
	if c, ok := notBooted.checkService(context.Background()); !ok || c.Status != StatusOK || !strings.Contains(c.Measured, "not checked") || asked != 0 {
		t.Fatalf("without systemd: %+v asked %d", c, asked)
	}

	tests := []struct {
		state   string
		err     error
		running bool
		status  Status
		cause   string
	}{
		{"active", nil, true, StatusOK, ""},
		{"failed", nil, true, StatusFail, "journalctl -u " + unit},
		{"inactive", nil, true, StatusWarn, "outside its installed service"},
		{"inactive", nil, false, StatusWarn, "systemctl enable --now " + unit},
		{"activating", nil, false, StatusWarn, "changing state"},
		{"", errors.New("systemctl is-active: no answer"), true, StatusWarn, "cannot ask systemd"},
	}
	for _, tt := range tests {
		l := l
		l.Running = tt.running
		l.IsActive = func(_ context.Context, u string) (string, error) {
			if u != unit {
				t.Errorf("asked about %s", u)
			}
			return tt.state, tt.err
		}
		c, ok := l.checkService(context.Background())
		if !ok || c.Status != tt.status || !strings.Contains(c.Cause, tt.cause) || c.Name != "service "+unit {
			t.Errorf("state %q running %v: %+v", tt.state, tt.running, c)
		}
		if tt.err == nil && !strings.Contains(c.Measured, path+": "+tt.state) {
			t.Errorf("state %q: measured %q", tt.state, c.Measured)
		}
	}
}

// TestSystemdBooted checks the real probe against the machine.
func TestSystemdBooted(t *testing.T) {
	fi, err := os.Stat("/run/systemd/system")
	want := err == nil && fi.IsDir()
	if got := (Local{}).systemdBooted(); got != want {
		t.Fatalf("systemdBooted = %v, /run/systemd/system exists: %v", got, want)
	}
}
