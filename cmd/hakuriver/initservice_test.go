package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// writeServiceConfig writes a config whose directories are data, shared,
// temp and state under dir, plus extra lines.
func writeServiceConfig(t *testing.T, dir, extra string) string {
	t.Helper()
	cfg := "[paths]\nshared_dir = \"" + dir + "/shared\"\nlocal_temp_dir = \"" + dir + "/temp\"\nrunner_state_dir = \"" + dir + "/state\"\n" +
		"[cluster]\ndata_dir = \"" + dir + "/data\"\n" + extra
	path := filepath.Join(dir, "hakuriver.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestInitService writes both units from a real config file into a
// directory and checks them with systemd-analyze verify (the binary in
// ExecStart= is this test binary, which exists).
func TestInitService(t *testing.T) {
	dir := t.TempDir()
	cfg := writeServiceConfig(t, dir, "")
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	for _, role := range []string{"host", "runner"} {
		stdout, stderr, err := runRoot(t, "", "init", "service", role, "--config", cfg, "--output-dir", out, "--binary", bin)
		if err != nil {
			t.Fatalf("init service %s: %v\n%s", role, err, stderr)
		}
		unit := filepath.Join(out, "hakuriver-"+role+".service")
		if !strings.Contains(stdout, "wrote "+unit) || !strings.Contains(stderr, "does not exist yet") {
			t.Errorf("init service %s: stdout %q stderr %q", role, stdout, stderr)
		}
		b, err := os.ReadFile(unit)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		wantDirs := map[string]string{
			"host":   "ReadWritePaths=" + dir + "/data " + dir + "/shared\n",
			"runner": "ReadWritePaths=" + dir + "/shared " + dir + "/state " + dir + "/temp\n",
		}[role]
		for _, want := range []string{wantDirs, "ExecStart=" + bin + " " + role + " --config " + cfg + "\n"} {
			if !strings.Contains(text, want) {
				t.Errorf("%s unit lacks %q:\n%s", role, want, text)
			}
		}
		if o, err := exec.Command("systemd-analyze", "verify", unit).CombinedOutput(); err != nil || len(strings.TrimSpace(string(o))) > 0 {
			t.Errorf("systemd-analyze verify %s: %v\n%s\n%s", unit, err, o, text)
		}
		// An existing unit stays unless --force.
		if _, _, err := runRoot(t, "", "init", "service", role, "--config", cfg, "--output-dir", out, "--binary", bin); err == nil || !strings.Contains(err.Error(), "--force") {
			t.Errorf("overwrite without --force: %v", err)
		}
	}
	stdout, _, err := runRoot(t, "", "init", "service", "runner", "--config", cfg, "--output-dir", "-", "--binary", bin)
	if err != nil || !strings.HasPrefix(stdout, "# hakuriver-runner.service") || !strings.Contains(stdout, "User=root\n") {
		t.Errorf("to stdout: %v\n%s", err, stdout)
	}

	// A host whose admin adds a home and a scratch disk: those become
	// writable and homes are no longer protected.
	stdout, _, err = runRoot(t, "", "init", "service", "host", "--config", cfg, "--output-dir", "-", "--binary", bin,
		"--write-path", "/home", "--write-path", "/scratch")
	if err != nil || !strings.Contains(stdout, "ReadWritePaths=/home /scratch ") ||
		strings.Contains(stdout, "\nProtectHome=") || !strings.Contains(stdout, "# No ProtectHome=: --write-path (/home)") {
		t.Errorf("--write-path: %v\n%s", err, stdout)
	}
	if _, _, err := runRoot(t, "", "init", "service", "runner", "--config", cfg, "--output-dir", "-", "--write-path", "scratch"); err == nil || !strings.Contains(err.Error(), "--write-path") {
		t.Errorf("relative --write-path: %v", err)
	}

	// A Docker group that does not exist here is left out: systemd would
	// refuse to start the unit.
	stdout, stderr, err := runRoot(t, "", "init", "service", "host", "--config", cfg, "--output-dir", "-", "--binary", bin, "--docker-group", "no-such-group-hk")
	if err != nil || strings.Contains(stdout, "SupplementaryGroups=") || !strings.Contains(stderr, "no group no-such-group-hk") {
		t.Errorf("missing docker group: %v\n%s\n%s", err, stdout, stderr)
	}
}

// TestInitServiceRefuses checks that a config whose paths cannot go into a
// unit is refused, naming the key, and that nothing is written.
func TestInitServiceRefuses(t *testing.T) {
	tests := []struct {
		name, extra, role, want string
	}{
		{"space", "", "host", "cluster.data_dir"},
		{"relative", "", "runner", "paths.local_temp_dir"},
		{"token file", "cluster_token_file = \"/etc/haku%itoken\"\n", "host", "cluster.cluster_token_file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := writeServiceConfig(t, dir, tt.extra)
			b, _ := os.ReadFile(cfg)
			switch tt.name {
			case "space":
				b = []byte(strings.Replace(string(b), dir+"/data", dir+"/my data", 1))
			case "relative":
				b = []byte(strings.Replace(string(b), dir+"/temp", "temp", 1))
			}
			if err := os.WriteFile(cfg, b, 0o600); err != nil {
				t.Fatal(err)
			}
			out := t.TempDir()
			_, _, err := runRoot(t, "", "init", "service", tt.role, "--config", cfg, "--output-dir", out, "--binary", "/usr/local/bin/hakuriver")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("want an error naming %s, got %v", tt.want, err)
			}
			if entries, _ := os.ReadDir(out); len(entries) != 0 {
				t.Errorf("wrote %v", entries)
			}
		})
	}
	for _, args := range [][]string{{"init", "service", "both"}, {"init", "service", "host", "--config", "/nonexistent.toml"}} {
		if _, _, err := runRoot(t, "", args...); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}
