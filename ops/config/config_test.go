package config_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/spf13/pflag"

	"github.com/hakuriver/hakuriver-ha/ops/config"
)

// writeFile writes content to a fresh config.toml and returns its path.
func writeFile(tb testing.TB, content string) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "config.toml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

// tomlKeys lists "section.key" for every toml-tagged field of Config.
func tomlKeys(tb testing.TB) []string {
	tb.Helper()
	var keys []string
	ct := reflect.TypeFor[config.Config]()
	for i := range ct.NumField() {
		sf := ct.Field(i)
		sec := sf.Tag.Get("toml")
		if sec == "" {
			tb.Fatalf("Config.%s has no toml tag", sf.Name)
		}
		for j := range sf.Type.NumField() {
			kf := sf.Type.Field(j)
			k := kf.Tag.Get("toml")
			if k == "" {
				tb.Fatalf("Config.%s.%s has no toml tag", sf.Name, kf.Name)
			}
			keys = append(keys, sec+"."+k)
		}
	}
	return keys
}

func TestDefault(t *testing.T) {
	t.Parallel()
	c := config.Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"host_bind_ip", c.Network.HostBindIP, "0.0.0.0"},
		{"host_port", c.Network.HostPort, 8000},
		{"host_ssh_proxy_port", c.Network.HostSSHProxyPort, 8002},
		{"host_reachable_address", c.Network.HostReachableAddress, "127.0.0.1"},
		{"runner_port", c.Network.RunnerPort, 8001},
		{"shared_dir", c.Paths.SharedDir, "/var/lib/hakuriver/shared"},
		{"heartbeat_interval", c.Timing.HeartbeatInterval, 5},
		{"heartbeat_timeout", c.Timing.HeartbeatTimeout(), 30 * time.Second},
		{"container_dir", c.Docker.ContainerDir, "hakuriver-containers"},
		{"keep_tarballs", c.Docker.KeepTarballs, 1},
		{"node_id", c.Cluster.NodeID, ""},
		{"raft_port", c.Cluster.RaftPort, 8300},
		{"gossip_port", c.Cluster.GossipPort, 7946},
		{"bootstrap_expect", c.Cluster.BootstrapExpect, 1},
		{"max_list_tasks", c.Cluster.MaxListTasks, 1000},
		{"leader_wait", c.Cluster.LeaderWait(), 5 * time.Second},
		{"raft_multiplier", c.Cluster.RaftMultiplier, 2},
	}
	for _, tc := range checks {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	// Each call returns fresh slices.
	c.Cluster.Join = append(c.Cluster.Join, "x:1")
	if got := config.Default().Cluster.Join; len(got) != 0 {
		t.Errorf("Default() shares slices: join = %v", got)
	}
}

func TestWriteDefault_RoundTrip(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	if err := config.WriteDefault(&buf); err != nil {
		t.Fatal(err)
	}
	got, err := config.Load(writeFile(t, buf.String()))
	if err != nil {
		t.Fatalf("Load(WriteDefault) error: %v", err)
	}
	if want := config.Default(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Load(WriteDefault) =\n%+v\nwant\n%+v", got, want)
	}

	// Every key is written, each right after its one-line comment.
	var raw map[string]map[string]any
	if _, err := toml.Decode(buf.String(), &raw); err != nil {
		t.Fatal(err)
	}
	var written []string
	for sec, keys := range raw {
		for k := range keys {
			written = append(written, sec+"."+k)
		}
	}
	want := tomlKeys(t)
	sort.Strings(written)
	sort.Strings(want)
	if !slices.Equal(written, want) {
		t.Errorf("written keys = %v\nwant %v", written, want)
	}
	lines := strings.Split(buf.String(), "\n")
	for i, line := range lines {
		if !strings.Contains(line, " = ") || strings.HasPrefix(line, "#") {
			continue
		}
		key := strings.SplitN(line, " ", 2)[0]
		if i == 0 || !strings.HasPrefix(lines[i-1], "# ") || !strings.Contains(lines[i-1], "--"+strings.ReplaceAll(key, "_", "-")) {
			t.Errorf("line %d %q: previous line %q is not a comment naming its flag", i+1, line, lines[i-1])
		}
	}
}

func TestLoad_Values(t *testing.T) {
	t.Parallel()
	path := writeFile(t, `
[network]
host_port = 9000
host_bind_ip = "10.0.0.1"

[docker]
tasks_privileged = true
additional_mounts = ["/data:/data:ro", "/x:/y"]

[cluster]
node_id = "h1"
join = ["10.0.0.2:7946", "10.0.0.3:7946"]
bootstrap_expect = 3
`)
	got, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	want := config.Default()
	want.Network.HostPort = 9000
	want.Network.HostBindIP = "10.0.0.1"
	want.Docker.TasksPrivileged = true
	want.Docker.AdditionalMounts = []string{"/data:/data:ro", "/x:/y"}
	want.Cluster.NodeID = "h1"
	want.Cluster.Join = []string{"10.0.0.2:7946", "10.0.0.3:7946"}
	want.Cluster.BootstrapExpect = 3
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Load =\n%+v\nwant\n%+v", got, want)
	}
	if id, err := got.NodeID(); err != nil || id != "h1" {
		t.Errorf("NodeID() = %q, %v; want h1", id, err)
	}
}

func TestLoadOptional(t *testing.T) {
	t.Parallel()
	got, err := config.LoadOptional("")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, config.Default()) {
		t.Errorf("LoadOptional(\"\") = %+v, want Default()", got)
	}
	got, err = config.LoadOptional(writeFile(t, "[timing]\nheartbeat_interval = 2\n"))
	if err != nil || got.Timing.HeartbeatInterval != 2 {
		t.Errorf("LoadOptional(file) = %d, %v; want 2, nil", got.Timing.HeartbeatInterval, err)
	}
	if _, err := config.LoadOptional(filepath.Join(t.TempDir(), "missing.toml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadOptional(missing) error = %v, want ErrNotExist", err)
	}
}

func TestLoad_Errors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		content string
		is      error
		want    []string // each must appear as "<path>" + want
	}{
		{
			name:    "unknown key",
			content: "[network]\nhost_port = 1\n\n# comment\nhost_prot = 2\n",
			is:      config.ErrUnknownKey,
			want:    []string{":5: unknown key network.host_prot (did you mean network.host_port?)"},
		},
		{
			name:    "unknown key without suggestion",
			content: "[cluster]\nflux_capacitor = true\n",
			is:      config.ErrUnknownKey,
			want:    []string{":2: unknown key cluster.flux_capacitor"},
		},
		{
			name:    "unknown section",
			content: "[network]\nhost_port = 1\n[netwrok]\nhost_port = 2\nother = 3\n",
			is:      config.ErrUnknownKey,
			want:    []string{":3: unknown key netwrok (did you mean network?)"},
		},
		{
			name:    "key from another section",
			content: "[paths]\n  raft_port = 1\n",
			is:      config.ErrUnknownKey,
			want:    []string{":2: unknown key paths.raft_port"},
		},
		{
			name:    "string for int",
			content: "[network]\nhost_bind_ip = \"1.2.3.4\"\n\n\nhost_port = \"8000\"\n",
			is:      config.ErrWrongType,
			want:    []string{":5: network.host_port: wrong type: expected integer, got string"},
		},
		{
			name:    "int for string",
			content: "[cluster]\nnode_id = 7\n",
			is:      config.ErrWrongType,
			want:    []string{":2: cluster.node_id: wrong type: expected string, got integer"},
		},
		{
			name:    "string for bool",
			content: "[docker]\ntasks_privileged = \"yes\"\n",
			is:      config.ErrWrongType,
			want:    []string{":2: docker.tasks_privileged: wrong type: expected boolean, got string"},
		},
		{
			name:    "float for int",
			content: "[timing]\nheartbeat_interval = 2.5\n",
			is:      config.ErrWrongType,
			want:    []string{":2: timing.heartbeat_interval: wrong type: expected integer, got float"},
		},
		{
			name:    "string for list",
			content: "[cluster]\njoin = \"a:1\"\n",
			is:      config.ErrWrongType,
			want:    []string{":2: cluster.join: wrong type: expected array of strings, got string"},
		},
		{
			name:    "ints in list",
			content: "[cluster]\njoin = [\"a:1\", 2]\n",
			is:      config.ErrWrongType,
			want:    []string{":2: cluster.join: wrong type: expected array of strings, element 2 is integer"},
		},
		{
			name:    "section not a table",
			content: "title = 1\nnetwork = 5\n",
			is:      config.ErrUnknownKey,
			want:    []string{":1: unknown key title", ":2: network: wrong type: expected table, got integer"},
		},
		{
			name:    "dotted key at top level",
			content: "# x\ncluster.raft_port = \"x\"\n",
			is:      config.ErrWrongType,
			want:    []string{":2: cluster.raft_port: wrong type: expected integer, got string"},
		},
		{
			name:    "inline table",
			content: "\nnetwork = { host_port = \"x\" }\n",
			is:      config.ErrWrongType,
			want:    []string{":2: network.host_port: wrong type: expected integer, got string"},
		},
		{
			name:    "table for a key",
			content: "[docker.keep_tarballs]\nn = 1\n",
			is:      config.ErrWrongType,
			want:    []string{":1: docker.keep_tarballs: wrong type: expected integer, got table"},
		},
		{
			name:    "several problems, all reported in file order",
			content: "[network]\nhost_prot = 1\nrunner_port = true\n[timing]\nbogus = 1\n",
			is:      config.ErrUnknownKey,
			want: []string{
				":2: unknown key network.host_prot",
				":3: network.runner_port: wrong type",
				":5: unknown key timing.bogus",
			},
		},
		{
			name:    "multi-line string does not confuse lines",
			content: "[paths]\nshared_dir = \"\"\"\n[cluster]\nraft_port = 1\n\"\"\"\nhost_port = 1\n",
			is:      config.ErrUnknownKey,
			want:    []string{":6: unknown key paths.host_port"},
		},
		{
			name:    "bad syntax",
			content: "[network]\nhost_port = 1\nhost_bind_ip = \n",
			is:      config.ErrSyntax,
			want:    []string{":3: invalid TOML: "},
		},
		{
			name:    "duplicate key",
			content: "[network]\nhost_port = 1\n\nhost_port = 2\n",
			is:      config.ErrSyntax,
			want:    []string{":4: invalid TOML: "},
		},
		{
			name:    "invalid value names file, line and key",
			content: "[cluster]\ndata_dir = \"/d\"\nbootstrap_expect = 0\n",
			is:      config.ErrInvalid,
			want:    []string{":3: cluster.bootstrap_expect: must be at least 1, got 0"},
		},
		{
			name:    "invalid values all reported",
			content: "[network]\nhost_port = 70000\n[cluster]\ngossip_key = \"c2hvcnQ=\"\n",
			is:      config.ErrInvalid,
			want: []string{
				":2: network.host_port: must be a port between 0 and 65535, got 70000",
				":4: cluster.gossip_key: decodes to 5 bytes, want 16, 24 or 32",
			},
		},
		{
			name:    "port clash names the later key",
			content: "[network]\nhost_port = 9000\n[cluster]\nraft_port = 9000\n",
			is:      config.ErrInvalid,
			want:    []string{":4: cluster.raft_port: port 9000 is also network.host_port"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := writeFile(t, tc.content)
			c, err := config.Load(path)
			if err == nil {
				t.Fatalf("Load succeeded: %+v", c)
			}
			if !errors.Is(err, tc.is) {
				t.Errorf("errors.Is(err, %v) = false; err = %v", tc.is, err)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.want) {
				t.Errorf("got %d error lines, want %d:\n%v", len(lines), len(tc.want), err)
			}
			for i, w := range tc.want {
				if i >= len(lines) || !strings.HasPrefix(lines[i], path+w) {
					t.Errorf("error line %d does not start with %q:\n%v", i+1, path+w, err)
				}
			}
		})
	}
}

func TestParse_Name(t *testing.T) {
	t.Parallel()
	_, err := config.Parse("config.toml", "[network]\n\nhost_prot = 1\n")
	if want := "config.toml:3: unknown key network.host_prot (did you mean network.host_port?)"; err == nil || err.Error() != want {
		t.Fatalf("Parse error = %v, want %q", err, want)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	key16 := base64.StdEncoding.EncodeToString(make([]byte, 16))
	tests := []struct {
		name   string
		mutate func(c *config.Config)
		want   string // "" means valid, else the error's first line starts with it
	}{
		{"ports may be 0", func(c *config.Config) {
			c.Network.HostPort, c.Network.HostSSHProxyPort, c.Network.RunnerPort = 0, 0, 0
			c.Cluster.RaftPort, c.Cluster.GossipPort = 0, 0
		}, ""},
		{"gossip key 16 bytes", func(c *config.Config) { c.Cluster.GossipKey = key16 }, ""},
		{"gossip key 32 bytes", func(c *config.Config) {
			c.Cluster.GossipKey = base64.StdEncoding.EncodeToString(make([]byte, 32))
		}, ""},
		{"leader wait 0", func(c *config.Config) { c.Cluster.LeaderWaitSeconds = 0 }, ""},
		{"host_port negative", func(c *config.Config) { c.Network.HostPort = -1 }, "network.host_port: must be a port"},
		{"host_port too big", func(c *config.Config) { c.Network.HostPort = 65536 }, "network.host_port: must be a port"},
		{"ssh proxy port", func(c *config.Config) { c.Network.HostSSHProxyPort = 70000 }, "network.host_ssh_proxy_port: must be a port"},
		{"runner port", func(c *config.Config) { c.Network.RunnerPort = -5 }, "network.runner_port: must be a port"},
		{"raft port", func(c *config.Config) { c.Cluster.RaftPort = 100000 }, "cluster.raft_port: must be a port"},
		{"gossip port", func(c *config.Config) { c.Cluster.GossipPort = -1 }, "cluster.gossip_port: must be a port"},
		{"bind ip empty", func(c *config.Config) { c.Network.HostBindIP = "" }, "network.host_bind_ip: must not be empty"},
		{"reachable empty", func(c *config.Config) { c.Network.HostReachableAddress = " " }, "network.host_reachable_address: must not be empty"},
		{"shared dir empty", func(c *config.Config) { c.Paths.SharedDir = "" }, "paths.shared_dir: must not be empty"},
		{"heartbeat interval", func(c *config.Config) { c.Timing.HeartbeatInterval = 0 }, "timing.heartbeat_interval: must be at least 1"},
		{"timeout factor", func(c *config.Config) { c.Timing.HeartbeatTimeoutFactor = 1 }, "timing.heartbeat_timeout_factor: must be at least 2"},
		{"cleanup interval", func(c *config.Config) { c.Timing.CleanupCheckInterval = 0 }, "timing.cleanup_check_interval: must be at least 1"},
		{"container dir", func(c *config.Config) { c.Docker.ContainerDir = "" }, "docker.container_dir: must not be empty"},
		{"keep tarballs", func(c *config.Config) { c.Docker.KeepTarballs = 0 }, "docker.keep_tarballs: must be at least 1"},
		{"mount without container path", func(c *config.Config) { c.Docker.AdditionalMounts = []string{"/a:/b", "/data"} }, "docker.additional_mounts: entry 2"},
		{"node id with space", func(c *config.Config) { c.Cluster.NodeID = "my node" }, "cluster.node_id: must not contain spaces"},
		{"data dir", func(c *config.Config) { c.Cluster.DataDir = "" }, "cluster.data_dir: must not be empty"},
		{"bootstrap expect", func(c *config.Config) { c.Cluster.BootstrapExpect = 0 }, "cluster.bootstrap_expect: must be at least 1"},
		{"join empty entry", func(c *config.Config) { c.Cluster.Join = []string{"a:1", ""} }, "cluster.join: entry 2 is empty"},
		{"gossip key not base64", func(c *config.Config) { c.Cluster.GossipKey = "not base64!" }, "cluster.gossip_key: decode base64"},
		{"gossip key wrong size", func(c *config.Config) {
			c.Cluster.GossipKey = base64.StdEncoding.EncodeToString(make([]byte, 20))
		}, "cluster.gossip_key: decodes to 20 bytes"},
		{"token and token file", func(c *config.Config) { c.Cluster.Token, c.Cluster.TokenFile = "t", "/f" }, "cluster.cluster_token_file: set only one"},
		{"max list tasks", func(c *config.Config) { c.Cluster.MaxListTasks = 0 }, "cluster.max_list_tasks: must be at least 1"},
		{"token and insecure", func(c *config.Config) { c.Cluster.Token, c.Cluster.InsecureNoToken = "t", true }, "cluster.insecure_no_token: set either"},
		{"insecure without token", func(c *config.Config) { c.Cluster.InsecureNoToken = true }, ""},
		{"state dir inside local temp", func(c *config.Config) {
			c.Paths.LocalTempDir, c.Paths.RunnerStateDir = "/var/tmp/hk", "/var/tmp/hk/state"
		}, "paths.runner_state_dir: \"/var/tmp/hk/state\" overlaps paths.local_temp_dir"},
		{"state dir holds shared", func(c *config.Config) {
			c.Paths.SharedDir, c.Paths.RunnerStateDir = "/srv/hk/shared", "/srv/hk/"
		}, "paths.runner_state_dir: \"/srv/hk/\" overlaps paths.shared_dir"},
		{"state dir beside temp", func(c *config.Config) {
			c.Paths.LocalTempDir, c.Paths.RunnerStateDir = "/var/lib/hk/temp", "/var/lib/hk/temp-state"
		}, ""},
		{"leader wait negative", func(c *config.Config) { c.Cluster.LeaderWaitSeconds = -1 }, "cluster.leader_wait_seconds: must be at least 0"},
		{"raft multiplier zero", func(c *config.Config) { c.Cluster.RaftMultiplier = 0 }, "cluster.raft_multiplier: must be between 1 and 10, got 0"},
		{"raft multiplier too big", func(c *config.Config) { c.Cluster.RaftMultiplier = 11 }, "cluster.raft_multiplier: must be between 1 and 10, got 11"},
		{"raft multiplier 10", func(c *config.Config) { c.Cluster.RaftMultiplier = 10 }, ""},
		{"port clash", func(c *config.Config) { c.Cluster.GossipPort = c.Network.HostSSHProxyPort }, "cluster.gossip_port: port 8002 is also network.host_ssh_proxy_port"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := config.Default()
			tc.mutate(&c)
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %q", tc.want)
			}
			if !errors.Is(err, config.ErrInvalid) {
				t.Errorf("errors.Is(err, ErrInvalid) = false for %v", err)
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("Validate() = %q, want prefix %q", err, tc.want)
			}
		})
	}
}

// newFlags returns a flag set with every config flag bound, parsed from args.
func newFlags(tb testing.TB, args ...string) *pflag.FlagSet {
	tb.Helper()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	fs.SetOutput(new(bytes.Buffer))
	c := config.Default()
	config.BindFlags(fs, &c)
	if err := fs.Parse(args); err != nil {
		tb.Fatalf("parse %v: %v", args, err)
	}
	return fs
}

func TestBindFlags_EveryKey(t *testing.T) {
	t.Parallel()
	fs := newFlags(t)
	for _, key := range tomlKeys(t) {
		name := strings.ReplaceAll(key[strings.IndexByte(key, '.')+1:], "_", "-")
		f := fs.Lookup(name)
		if f == nil {
			t.Errorf("no flag --%s for %s", name, key)
			continue
		}
		if !strings.Contains(f.Usage, "(config "+key+")") || len(f.Usage) < len(key)+20 {
			t.Errorf("--%s usage %q does not explain %s", name, f.Usage, key)
		}
	}
	aliases := map[string]string{"bind": "host-bind-ip", "advertise": "host-reachable-address", "api-port": "host-port", "ssh-proxy-port": "host-ssh-proxy-port"}
	for alias, target := range aliases {
		f := fs.Lookup(alias)
		if f == nil || f.Usage != "alias of --"+target {
			t.Errorf("alias --%s = %+v, want alias of --%s", alias, f, target)
		}
	}
	if got := fs.Lookup("host-port").DefValue; got != "8000" {
		t.Errorf("--host-port default = %q, want 8000", got)
	}
}

func TestResolve(t *testing.T) {
	t.Parallel()
	file := writeFile(t, `
[network]
host_port = 9000
host_reachable_address = "10.0.0.9"

[docker]
additional_mounts = ["/file:/file"]

[cluster]
raft_port = 9300
gossip_port = 7000
join = ["file:1"]
`)
	tests := []struct {
		name  string
		path  string
		args  []string
		check func(t *testing.T, c config.Config)
	}{
		{"unchanged flags keep file values", file, nil, func(t *testing.T, c config.Config) {
			if c.Network.HostPort != 9000 || c.Cluster.RaftPort != 9300 || c.Cluster.GossipPort != 7000 {
				t.Errorf("ports = %d %d %d, want file's 9000 9300 7000", c.Network.HostPort, c.Cluster.RaftPort, c.Cluster.GossipPort)
			}
			if !slices.Equal(c.Cluster.Join, []string{"file:1"}) {
				t.Errorf("join = %v, want file's", c.Cluster.Join)
			}
		}},
		{"changed flags override the file", file, []string{"--raft-port", "9400", "--data-dir=/x", "--tasks-privileged"}, func(t *testing.T, c config.Config) {
			if c.Cluster.RaftPort != 9400 || c.Cluster.DataDir != "/x" || !c.Docker.TasksPrivileged {
				t.Errorf("got raft_port %d data_dir %q privileged %v", c.Cluster.RaftPort, c.Cluster.DataDir, c.Docker.TasksPrivileged)
			}
			if c.Network.HostPort != 9000 {
				t.Errorf("host_port = %d, want file's 9000", c.Network.HostPort)
			}
		}},
		{"flag set to the default still overrides", file, []string{"--host-port", "8000"}, func(t *testing.T, c config.Config) {
			if c.Network.HostPort != 8000 {
				t.Errorf("host_port = %d, want 8000", c.Network.HostPort)
			}
		}},
		{"join repeatable and comma-separated, replaces the file", file, []string{"--join", "a:1", "--join", "b:2,c:3"}, func(t *testing.T, c config.Config) {
			if want := []string{"a:1", "b:2", "c:3"}; !slices.Equal(c.Cluster.Join, want) {
				t.Errorf("join = %v, want %v", c.Cluster.Join, want)
			}
		}},
		{"mounts keep commas", file, []string{"--additional-mounts", "/a:/b:ro,readonly", "--additional-mounts", "/c:/d"}, func(t *testing.T, c config.Config) {
			if want := []string{"/a:/b:ro,readonly", "/c:/d"}; !slices.Equal(c.Docker.AdditionalMounts, want) {
				t.Errorf("additional_mounts = %v, want %v", c.Docker.AdditionalMounts, want)
			}
		}},
		{"aliases", file, []string{"--bind", "127.0.0.2", "--advertise", "h.example", "--api-port", "1234", "--ssh-proxy-port=2345"}, func(t *testing.T, c config.Config) {
			n := c.Network
			if n.HostBindIP != "127.0.0.2" || n.HostReachableAddress != "h.example" || n.HostPort != 1234 || n.HostSSHProxyPort != 2345 {
				t.Errorf("network = %+v", n)
			}
		}},
		{"no file: defaults plus flags", "", []string{"--node-id", "n1", "--bootstrap-expect", "3", "--gossip-key", base64.StdEncoding.EncodeToString(make([]byte, 24))}, func(t *testing.T, c config.Config) {
			want := config.Default()
			want.Cluster.NodeID = "n1"
			want.Cluster.BootstrapExpect = 3
			want.Cluster.GossipKey = base64.StdEncoding.EncodeToString(make([]byte, 24))
			if !reflect.DeepEqual(c, want) {
				t.Errorf("Resolve =\n%+v\nwant\n%+v", c, want)
			}
			if k, err := c.GossipKey(); err != nil || len(k) != 24 {
				t.Errorf("GossipKey() = %d bytes, %v; want 24", len(k), err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := config.Resolve(newFlags(t, tc.args...), tc.path)
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			tc.check(t, c)
		})
	}
}

func TestResolve_Errors(t *testing.T) {
	t.Parallel()
	file := writeFile(t, "[cluster]\n\nmax_list_tasks = 0\n")
	good := writeFile(t, "")
	tests := []struct {
		name string
		path string
		args []string
		want []string
	}{
		{"invalid flag value names the flag", good, []string{"--bootstrap-expect", "0"},
			[]string{"flag --bootstrap-expect: cluster.bootstrap_expect: must be at least 1, got 0"}},
		{"alias named", "", []string{"--api-port", "-1"},
			[]string{"flag --api-port: network.host_port: must be a port"}},
		{"invalid file value names the line", file, nil,
			[]string{file + ":3: cluster.max_list_tasks: must be at least 1"}},
		{"flag fixes the file", file, []string{"--max-list-tasks", "5", "--heartbeat-timeout-factor", "1"},
			[]string{"flag --heartbeat-timeout-factor: timing.heartbeat_timeout_factor: must be at least 2"}},
		{"file errors come first", writeFile(t, "[cluster]\nraft_prot = 1\n"), []string{"--raft-port", "1"},
			[]string{"config.toml:2: unknown key cluster.raft_prot"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Resolve(newFlags(t, tc.args...), tc.path)
			if err == nil {
				t.Fatal("Resolve succeeded")
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.want) {
				t.Fatalf("got %d error lines, want %d:\n%v", len(lines), len(tc.want), err)
			}
			for i, w := range tc.want {
				if !strings.Contains(lines[i], w) {
					t.Errorf("error line %q does not contain %q", lines[i], w)
				}
			}
		})
	}
}

func TestClusterToken(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("  s3cret \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	emptyFile := filepath.Join(dir, "empty")
	if err := os.WriteFile(emptyFile, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		token, file string
		want        string
		wantErr     error
	}{
		{"neither", "", "", "", nil},
		{"token", "abc", "", "abc", nil},
		{"token wins", "abc", tokenFile, "abc", nil},
		{"file trimmed", "", tokenFile, "s3cret", nil},
		{"empty file", "", emptyFile, "", config.ErrEmptyToken},
		{"missing file", "", filepath.Join(dir, "nope"), "", os.ErrNotExist},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := config.Default()
			c.Cluster.Token, c.Cluster.TokenFile = tc.token, tc.file
			got, err := c.ClusterToken()
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("ClusterToken() error = %v, want %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("ClusterToken() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestNodeIDDefaultsToHostname(t *testing.T) {
	t.Parallel()
	host, err := os.Hostname()
	if err != nil {
		t.Skip("no hostname:", err)
	}
	if got, err := config.Default().NodeID(); err != nil || got != host {
		t.Errorf("NodeID() = %q, %v; want %q", got, err, host)
	}
}

func TestTLSSection(t *testing.T) {
	t.Parallel()
	path := writeFile(t, `
[tls]
cert_file = "/etc/hakuriver/tls/h1.pem"
key_file = "/etc/hakuriver/tls/h1-key.pem"
ca_file = "/etc/hakuriver/tls/ca.pem"
`)
	got, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !got.TLS.Enabled() || got.TLS.CertFile != "/etc/hakuriver/tls/h1.pem" || got.TLS.KeyFile != "/etc/hakuriver/tls/h1-key.pem" || got.TLS.CAFile != "/etc/hakuriver/tls/ca.pem" {
		t.Fatalf("tls = %+v", got.TLS)
	}
	if config.Default().TLS.Enabled() {
		t.Fatal("TLS enabled by default")
	}
	half := config.Default()
	half.TLS.CertFile = "/x.pem"
	err = half.Validate()
	if err == nil || !strings.Contains(err.Error(), "tls.cert_file") || !strings.Contains(err.Error(), "tls.ca_file") {
		t.Fatalf("half a [tls] section: %v", err)
	}
}
