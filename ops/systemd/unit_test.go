package systemd

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// testBinary is an executable that exists, for ExecStart= (systemd-analyze
// verify refuses a missing one).
func testBinary(t *testing.T) string {
	t.Helper()
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if bin, err = filepath.EvalSymlinks(bin); err != nil {
		t.Fatal(err)
	}
	return bin
}

func hostUnit(bin string) Unit {
	return Unit{Role: RoleHost, Binary: bin, Config: "/etc/hakuriver.toml", User: "hakuriver", Group: "hakuriver",
		SupplementaryGroups: []string{"docker"},
		Write:               []Path{{"cluster.data_dir", "/var/lib/hakuriver/data"}, {"paths.shared_dir", "/mnt/shared"}},
		Read:                []Path{{"--binary", bin}, {"--config", "/etc/hakuriver.toml"}, {"cluster.cluster_token_file", "/etc/hakuriver/token"}},
		Mounts:              []Path{{"paths.shared_dir", "/mnt/shared"}}}
}

func runnerUnit(bin string) Unit {
	return Unit{Role: RoleRunner, Binary: bin, Config: "/etc/hakuriver.toml", User: "root", Group: "root",
		Write: []Path{{"paths.shared_dir", "/mnt/shared"}, {"paths.local_temp_dir", "/var/lib/hakuriver/temp"},
			{"paths.runner_state_dir", "/var/lib/hakuriver/runner"}},
		Read:   []Path{{"--binary", bin}, {"--config", "/etc/hakuriver.toml"}},
		Mounts: []Path{{"paths.shared_dir", "/mnt/shared"}}}
}

// verify runs `systemd-analyze verify` on text saved as name and returns
// its output; a unit passes when it exits 0 and prints nothing (an unknown
// directive is only a warning, with exit status 0).
func verify(t *testing.T, name string, text []byte) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Fatalf("systemd-analyze is missing: install Debian's systemd package (.ci/test-deps.sh does): %v", err)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, text, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("systemd-analyze", "verify", path).CombinedOutput()
	if err == nil && len(strings.TrimSpace(string(out))) > 0 {
		err = errors.New("warnings")
	}
	return string(out), err
}

// TestRenderVerify renders both units and checks them with systemd's own
// verifier; a copy with a misspelt directive must fail it (the verifier
// really reads what we write).
func TestRenderVerify(t *testing.T) {
	bin := testBinary(t)
	lowPorts := hostUnit(bin)
	lowPorts.LowPorts = true
	for _, u := range []Unit{hostUnit(bin), runnerUnit(bin), lowPorts} {
		t.Run(fmt.Sprintf("%s low ports %v", u.Role, u.LowPorts), func(t *testing.T) {
			b, err := Render(u)
			if err != nil {
				t.Fatal(err)
			}
			if out, err := verify(t, UnitName(u.Role), b); err != nil {
				t.Fatalf("systemd-analyze verify: %v\n%s\n%s", err, out, b)
			}
			typo := strings.Replace(string(b), "NoNewPrivileges=", "NoNewPrivilege=", 1)
			if out, err := verify(t, UnitName(u.Role), []byte(typo)); err == nil || !strings.Contains(out, "NoNewPrivilege") {
				t.Fatalf("a misspelt directive passed verify: %v %s", err, out)
			}
			broken := strings.Replace(string(b), "ExecStart="+bin, "ExecStart=/nonexistent/hakuriver", 1)
			if out, err := verify(t, UnitName(u.Role), []byte(broken)); err == nil {
				t.Fatalf("a missing binary passed verify: %s", out)
			}
		})
	}
}

func TestRenderContents(t *testing.T) {
	bin := "/usr/local/bin/hakuriver"
	b, err := Render(hostUnit(bin))
	if err != nil {
		t.Fatal(err)
	}
	host := string(b)
	for _, want := range []string{
		"User=hakuriver\n", "Group=hakuriver\n", "SupplementaryGroups=docker\n",
		"ExecStart=/usr/local/bin/hakuriver host --config /etc/hakuriver.toml\n",
		"NoNewPrivileges=yes\n", "ProtectSystem=strict\n", "ProtectHome=yes\n", "PrivateTmp=yes\n",
		"ReadWritePaths=/mnt/shared /var/lib/hakuriver/data\n", "LimitNOFILE=65536\n",
		"Restart=on-failure\n", "RestartSec=5s\n", "RequiresMountsFor=/mnt/shared\n", "CapabilityBoundingSet=\n",
	} {
		if !strings.Contains(host, want) {
			t.Errorf("host unit lacks %q:\n%s", want, host)
		}
	}
	if strings.Contains(host, "\nExecReload=") {
		t.Errorf("host unit reloads with a signal the process does not handle:\n%s", host)
	}

	b, err = Render(runnerUnit(bin))
	if err != nil {
		t.Fatal(err)
	}
	runner := string(b)
	for _, want := range []string{
		"User=root\n", "KillMode=process\n", "ProtectSystem=full\n", "NoNewPrivileges=yes\n",
		"ReadWritePaths=/mnt/shared /var/lib/hakuriver/runner /var/lib/hakuriver/temp\n",
	} {
		if !strings.Contains(runner, want) {
			t.Errorf("runner unit lacks %q:\n%s", want, runner)
		}
	}
	for _, not := range []string{"PrivateDevices=", "ProtectControlGroups=", "ProtectClock=", "CapabilityBoundingSet=", "ProtectHome=", "PrivateTmp=", "ProtectSystem=strict"} {
		if strings.Contains(runner, not) {
			t.Errorf("runner unit has %q, which breaks cgroups, GPUs or native tasks' writes:\n%s", not, runner)
		}
	}

	// Paths under /tmp or a home keep PrivateTmp and ProtectHome away.
	u := hostUnit(bin)
	u.Write = append(u.Write, Path{"paths.shared_dir", "/tmp/shared"})
	u.Read = append(u.Read, Path{"tls.ca_file", "/home/ops/ca.pem"})
	b, err = Render(u)
	if err != nil {
		t.Fatal(err)
	}
	if s := string(b); strings.Contains(s, "PrivateTmp=yes") || !strings.Contains(s, "ProtectHome=read-only") || !strings.Contains(s, "No PrivateTmp=: paths.shared_dir (/tmp/shared)") {
		t.Errorf("paths under /tmp and /home:\n%s", s)
	}
	u.Write = append(u.Write, Path{"cluster.data_dir", "/root/data"})
	if b, err = Render(u); err != nil || strings.Contains(string(b), "\nProtectHome=") || !strings.Contains(string(b), "# No ProtectHome=: cluster.data_dir (/root/data)") {
		t.Errorf("data dir in /root: %v\n%s", err, b)
	}
	// A port below 1024 keeps the one capability that binds it.
	u = hostUnit(bin)
	u.LowPorts = true
	if b, _ := Render(u); !strings.Contains(string(b), "\nCapabilityBoundingSet=CAP_NET_BIND_SERVICE\n") || !strings.Contains(string(b), "\nAmbientCapabilities=CAP_NET_BIND_SERVICE\n") {
		t.Errorf("low ports:\n%s", b)
	}
	// Nested write directories collapse into their parent.
	u = runnerUnit(bin)
	u.Write = append(u.Write, Path{"paths.runner_state_dir", "/mnt/shared/state"})
	if b, _ := Render(u); !strings.Contains(string(b), "ReadWritePaths=/mnt/shared /var/lib/hakuriver/runner /var/lib/hakuriver/temp\n") {
		t.Errorf("nested write dirs:\n%s", b)
	}
}

// TestRenderRefuses checks that a value a unit file would misread is
// refused, naming its field.
func TestRenderRefuses(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(u *Unit)
		field string
	}{
		{"space in data dir", func(u *Unit) { u.Write[0].Path = "/var/lib/haku river" }, "cluster.data_dir"},
		{"newline in config", func(u *Unit) { u.Config = "/etc/hakuriver.toml\nExecStartPre=/bin/sh" }, "--config"},
		{"relative shared dir", func(u *Unit) { u.Write[1].Path = "shared" }, "paths.shared_dir"},
		{"specifier", func(u *Unit) { u.Write[1].Path = "/mnt/%h" }, "paths.shared_dir"},
		{"variable", func(u *Unit) { u.Binary = "/opt/$HOME/hakuriver" }, "--binary"},
		{"quote", func(u *Unit) { u.Read[2].Path = `/etc/"token` }, "cluster.cluster_token_file"},
		{"semicolon", func(u *Unit) { u.Config = "/etc/a;b" }, "--config"},
		{"unclean", func(u *Unit) { u.Write[0].Path = "/var/lib/../data" }, "cluster.data_dir"},
		{"user", func(u *Unit) { u.User = "haku river" }, "--user"},
		{"group", func(u *Unit) { u.Group = "-x" }, "--group"},
		{"empty user", func(u *Unit) { u.User = "" }, "--user"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := hostUnit("/usr/local/bin/hakuriver")
			tt.edit(&u)
			b, err := Render(u)
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("Render = %v (%d bytes), want an error naming %s", err, len(b), tt.field)
			}
		})
	}
	for _, ok := range []string{"1001", "hakuriver", "_svc", "a-b_c"} {
		if err := CheckName("--user", ok); err != nil {
			t.Errorf("CheckName(%q) = %v", ok, err)
		}
	}
}
