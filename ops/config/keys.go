package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"unicode"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
)

// section describes one [section] of the file, in file order.
type section struct {
	name string
	help string
}

// setting describes one key. The table of settings is the single source of
// truth for loading, flags, validation and the commented default file.
type setting struct {
	section string
	name    string
	// aliases are flag names besides the one derived from the key.
	aliases []string
	// help is a one-line explanation, used as the file comment and flag usage.
	help string
	// field returns a pointer into c: *string, *int, *bool or *[]string.
	field func(c *Config) any
	// check returns why the value at the pointer is invalid, or "".
	check func(p any) string
	// noSplit makes a []string flag take each value whole, commas included.
	noSplit bool
}

// key returns the full dotted key, e.g. "network.host_port".
func (s setting) key() string { return s.section + "." + s.name }

// flag returns the flag name derived from the key: "host_port" → "host-port".
func (s setting) flag() string { return strings.ReplaceAll(s.name, "_", "-") }

// flagNames returns the flag derived from the key, then the aliases.
func (s setting) flagNames() []string { return append([]string{s.flag()}, s.aliases...) }

func sections() []section {
	return []section{
		{"network", "Listen addresses and ports of hosts and runners."},
		{"paths", "Directories and files."},
		{"timing", "Heartbeats and periodic checks, in whole seconds."},
		{"environment", "How native tasks run."},
		{"docker", "Container environments, stored as tarballs in <shared_dir>/<container_dir>."},
		{"cluster", "High availability: Raft host replicas, gossip membership, cluster secrets."},
		{"auth", "Accounts: what callers without a token may do, and how long the audit log is kept."},
		{"vps", "The VPS lifecycle on host replicas."},
		{"tls", "TLS of the API, runners and Raft (make the files with `hakuriver tls init`); all three files or none."},
		{"notify", "Webhook notifications of task states: signed JSON POSTs from the leader (see the README's Notifications)."},
	}
}

// settings returns the table of every key, in file order.
func settings() []setting {
	return []setting{
		// [network]
		{section: "network", name: "host_bind_ip", aliases: []string{"bind"},
			help:  "address the host's HTTP API and SSH proxy listen on",
			field: func(c *Config) any { return &c.Network.HostBindIP }, check: nonEmpty},
		{section: "network", name: "host_port", aliases: []string{"api-port"},
			help:  "port of the host's HTTP API and dashboard (0 = any free port)",
			field: func(c *Config) any { return &c.Network.HostPort }, check: port},
		{section: "network", name: "host_ssh_proxy_port", aliases: []string{"ssh-proxy-port"},
			help:  "port of the host's SSH proxy (0 = any free port)",
			field: func(c *Config) any { return &c.Network.HostSSHProxyPort }, check: port},
		{section: "network", name: "host_reachable_address", aliases: []string{"advertise"},
			help:  "address runners and clients use to reach this host",
			field: func(c *Config) any { return &c.Network.HostReachableAddress }, check: nonEmpty},
		{section: "network", name: "runner_address",
			help:  "address a runner advertises to the hosts (empty = detect it)",
			field: func(c *Config) any { return &c.Network.RunnerAddress }},
		{section: "network", name: "runner_port",
			help:  "port of the runner API (0 = any free port)",
			field: func(c *Config) any { return &c.Network.RunnerPort }, check: port},

		// [paths]
		{section: "paths", name: "shared_dir",
			help:  "storage shared by all nodes: task logs and container tarballs (use an absolute path)",
			field: func(c *Config) any { return &c.Paths.SharedDir }, check: nonEmpty},
		{section: "paths", name: "local_temp_dir",
			help:  "node-local scratch directory, mounted into tasks as /local_temp",
			field: func(c *Config) any { return &c.Paths.LocalTempDir }, check: nonEmpty},
		{section: "paths", name: "runner_state_dir",
			help:  "a runner's private state (task records, its lock), mode 0700, never mounted into tasks; must be outside local_temp_dir and shared_dir",
			field: func(c *Config) any { return &c.Paths.RunnerStateDir }, check: nonEmpty},
		{section: "paths", name: "numactl_path",
			help:  "path of the numactl binary used for NUMA binding (empty = numactl from PATH)",
			field: func(c *Config) any { return &c.Paths.NumactlPath }},
		{section: "paths", name: "host_log_file",
			help:  "file a host logs to (empty = standard error; --log-file overrides it); SIGHUP reopens it",
			field: func(c *Config) any { return &c.Paths.HostLogFile }},
		{section: "paths", name: "runner_log_file",
			help:  "file a runner logs to (empty = standard error; --log-file overrides it); SIGHUP reopens it",
			field: func(c *Config) any { return &c.Paths.RunnerLogFile }},

		// [timing]
		{section: "timing", name: "heartbeat_interval",
			help:  "seconds between runner heartbeats",
			field: func(c *Config) any { return &c.Timing.HeartbeatInterval }, check: atLeast(1)},
		{section: "timing", name: "heartbeat_timeout_factor",
			help:  "a runner is offline after heartbeat_interval x this factor seconds without a heartbeat",
			field: func(c *Config) any { return &c.Timing.HeartbeatTimeoutFactor }, check: atLeast(2)},
		{section: "timing", name: "cleanup_check_interval",
			help:  "seconds between scans for offline runners",
			field: func(c *Config) any { return &c.Timing.CleanupCheckInterval }, check: atLeast(1)},

		// [environment]
		{section: "environment", name: "runner_user",
			help:  "user native tasks run as (empty = the runner's own user)",
			field: func(c *Config) any { return &c.Environment.RunnerUser }},

		// [docker]
		{section: "docker", name: "container_dir",
			help:  "directory of environment tarballs, relative to shared_dir",
			field: func(c *Config) any { return &c.Docker.ContainerDir }, check: nonEmpty},
		{section: "docker", name: "default_container_name",
			help:  "environment of tasks that name none",
			field: func(c *Config) any { return &c.Docker.DefaultContainerName }, check: nonEmpty},
		{section: "docker", name: "initial_base_image",
			help:  "Docker image that creates the default environment when it has no tarball (empty = none)",
			field: func(c *Config) any { return &c.Docker.InitialBaseImage }},
		{section: "docker", name: "tasks_privileged",
			help:  "run container tasks privileged unless a task says otherwise",
			field: func(c *Config) any { return &c.Docker.TasksPrivileged }},
		{section: "docker", name: "additional_mounts", noSplit: true,
			help:  "extra host:container[:options] mounts for every container task",
			field: func(c *Config) any { return &c.Docker.AdditionalMounts }, check: mounts},
		{section: "docker", name: "keep_tarballs",
			help:  "tarball versions kept per environment",
			field: func(c *Config) any { return &c.Docker.KeepTarballs }, check: atLeast(1)},

		// [cluster]
		{section: "cluster", name: "node_id",
			help:  "name of this node in Raft and gossip (empty = the hostname)",
			field: func(c *Config) any { return &c.Cluster.NodeID }, check: nodeID},
		{section: "cluster", name: "data_dir",
			help:  "directory of a host's Raft log, stable store and snapshots",
			field: func(c *Config) any { return &c.Cluster.DataDir }, check: nonEmpty},
		{section: "cluster", name: "min_free_disk",
			help:  "free space a host keeps on data_dir's filesystem: below it the replica refuses writes (507) and still serves reads (0 = no limit)",
			field: func(c *Config) any { return &c.Cluster.MinFreeDisk }, check: byteSize},
		{section: "cluster", name: "raft_port",
			help:  "Raft transport port of a host (0 = any free port)",
			field: func(c *Config) any { return &c.Cluster.RaftPort }, check: port},
		{section: "cluster", name: "gossip_port",
			help:  "gossip (memberlist) port, TCP and UDP (0 = any free port)",
			field: func(c *Config) any { return &c.Cluster.GossipPort }, check: port},
		{section: "cluster", name: "bootstrap_expect",
			help:  "host replicas to wait for before bootstrapping Raft the first time",
			field: func(c *Config) any { return &c.Cluster.BootstrapExpect }, check: atLeast(1)},
		{section: "cluster", name: "join",
			help:  "gossip addresses (host:port) of members to join at start",
			field: func(c *Config) any { return &c.Cluster.Join }, check: nonEmptyItems},
		{section: "cluster", name: "gossip_key",
			help:  "base64 of a 16, 24 or 32 byte key that encrypts gossip (empty = unencrypted)",
			field: func(c *Config) any { return &c.Cluster.GossipKey }, check: gossipKey},
		{section: "cluster", name: "cluster_token",
			help:  "shared secret that authenticates internal calls (empty = read cluster_token_file)",
			field: func(c *Config) any { return &c.Cluster.Token }},
		{section: "cluster", name: "cluster_token_file",
			help:  "file holding the cluster token, used when cluster_token is empty",
			field: func(c *Config) any { return &c.Cluster.TokenFile }},
		{section: "cluster", name: "insecure_no_token",
			help:  "start a host or runner without a cluster token: anyone may then make internal calls and change membership (never in production)",
			field: func(c *Config) any { return &c.Cluster.InsecureNoToken }},
		{section: "cluster", name: "max_list_tasks",
			help:  "most tasks one list request returns",
			field: func(c *Config) any { return &c.Cluster.MaxListTasks }, check: atLeast(1)},
		{section: "cluster", name: "leader_wait_seconds",
			help:  "seconds a replica waits for a leader before answering 503",
			field: func(c *Config) any { return &c.Cluster.LeaderWaitSeconds }, check: atLeast(0)},
		{section: "cluster", name: "backup_dir",
			help:  "directory (e.g. on shared storage) where the leader writes periodic snapshots of the state (empty = none)",
			field: func(c *Config) any { return &c.Cluster.BackupDir }},
		{section: "cluster", name: "backup_interval",
			help:  "seconds between periodic snapshots into backup_dir",
			field: func(c *Config) any { return &c.Cluster.BackupInterval }, check: atLeast(1)},
		{section: "cluster", name: "backup_keep",
			help:  "periodic snapshots kept in backup_dir, oldest removed first",
			field: func(c *Config) any { return &c.Cluster.BackupKeep }, check: atLeast(1)},
		{section: "cluster", name: "raft_multiplier",
			help:  "scales Raft's heartbeat, election and leader lease timeouts (0.5 s, 0.5 s, 0.25 s at 1), like Consul's raft_multiplier: 1 = fastest failover, raise it (up to 10) for slow disks or busy hosts; the same on every replica",
			field: func(c *Config) any { return &c.Cluster.RaftMultiplier }, check: between(1, MaxRaftMultiplier)},
		{section: "cluster", name: "history_keep_days",
			help:  "finished tasks completed more than this many days ago leave memory for the on-disk archive <data_dir>/archive.db, where every read still finds them (0 = no age rule)",
			field: func(c *Config) any { return &c.Cluster.HistoryKeepDays }, check: atLeast(0)},
		{section: "cluster", name: "history_keep_tasks",
			help:  "finished tasks kept in memory, newest first; older ones go to the archive (0 = no count rule; with history_keep_days 0 too, nothing is archived)",
			field: func(c *Config) any { return &c.Cluster.HistoryKeepTasks }, check: atLeast(0)},
		{section: "cluster", name: "history_archive_interval",
			help:  "seconds between the leader's looks for finished tasks to archive",
			field: func(c *Config) any { return &c.Cluster.HistoryArchiveInterval }, check: atLeast(1)},
		{section: "cluster", name: "raft_snapshot_threshold",
			help:  "Raft log entries between snapshots of the state, and the entries kept after one (a replica further behind gets the snapshot)",
			field: func(c *Config) any { return &c.Cluster.RaftSnapshotThreshold }, check: atLeast(16)},
		{section: "cluster", name: "raft_snapshot_interval",
			help:  "seconds between a replica's checks whether a Raft snapshot is due",
			field: func(c *Config) any { return &c.Cluster.RaftSnapshotInterval }, check: atLeast(1)},
		{section: "auth", name: "anonymous_role",
			help:  "what callers without a token may do: none, viewer, user or operator (user = the original HakuRiver's open API)",
			field: func(c *Config) any { return &c.Auth.AnonymousRole }, check: anonymousRole},
		{section: "auth", name: "audit_keep",
			help:  "audit records the cluster keeps, oldest dropped first (0 = no cap)",
			field: func(c *Config) any { return &c.Auth.AuditKeep }, check: atLeast(0)},
		{section: "auth", name: "audit_max_age_days",
			help:  "days an audit record is kept (0 = no age limit)",
			field: func(c *Config) any { return &c.Auth.AuditMaxAgeDays }, check: atLeast(0)},

		// [vps]
		{section: "vps", name: "idle_stop",
			help:  "stop (and keep) a running VPS after this many seconds with no SSH session through any replica's SSH proxy (0 = never); the leader decides",
			field: func(c *Config) any { return &c.VPS.IdleStopSeconds }, check: atLeast(0)},

		// [tls]
		{section: "tls", name: "cert_file",
			help:  "this node's certificate (PEM) signed by the cluster CA (empty = no TLS)",
			field: func(c *Config) any { return &c.TLS.CertFile }},
		{section: "tls", name: "key_file",
			help:  "private key of cert_file (PEM, keep it mode 0600)",
			field: func(c *Config) any { return &c.TLS.KeyFile }},
		{section: "tls", name: "ca_file",
			help:  "cluster CA certificate (PEM) that peers are verified against",
			field: func(c *Config) any { return &c.TLS.CAFile }},

		// [notify]
		{section: "notify", name: "webhook_urls", noSplit: true,
			help:  "URLs that receive the events of every task (cluster-wide webhooks)",
			field: func(c *Config) any { return &c.Notify.WebhookURLs }},
		{section: "notify", name: "webhook_events",
			help:  "which events are sent: final (final states only) or all (every status change)",
			field: func(c *Config) any { return &c.Notify.WebhookEvents }, check: oneOf("final", "all")},
		{section: "notify", name: "webhook_secret",
			help:  "secret that signs every delivery (HMAC-SHA256, header X-HakuRiver-Signature); required with webhook_urls or webhook_allow",
			field: func(c *Config) any { return &c.Notify.WebhookSecret }},
		{section: "notify", name: "webhook_secret_file",
			help:  "file holding webhook_secret (instead of the secret itself)",
			field: func(c *Config) any { return &c.Notify.WebhookSecretFile }},
		{section: "notify", name: "webhook_allow", noSplit: true,
			help:  "URL prefixes a task's own --notify URL may start with (empty = per-task URLs refused: the leader POSTs from inside the lab network)",
			field: func(c *Config) any { return &c.Notify.WebhookAllow }},
		{section: "notify", name: "webhook_max_attempts",
			help:  "attempts of one delivery before it is recorded failed (exponential backoff from 1 s to 5 min between them)",
			field: func(c *Config) any { return &c.Notify.WebhookMaxAttempts }, check: between(1, 100)},
		{section: "notify", name: "webhook_timeout",
			help:  "seconds one delivery attempt may take",
			field: func(c *Config) any { return &c.Notify.WebhookTimeout }, check: between(1, 300)},
	}
}

// oneOf accepts one of the given strings.
func oneOf(vals ...string) func(any) string {
	return func(p any) string {
		v := *p.(*string)
		for _, ok := range vals {
			if v == ok {
				return ""
			}
		}
		return fmt.Sprintf("must be one of %s, got %q", strings.Join(vals, ", "), v)
	}
}

// Validate checks every value and the rules between them. It returns nil or
// an error joining one line per problem, each naming its key, e.g.
// "cluster.bootstrap_expect: must be at least 1"; every one wraps ErrInvalid.
func (c Config) Validate() error {
	errs := c.problems()
	if len(errs) == 0 {
		return nil
	}
	list := make([]error, len(errs))
	for i, e := range errs {
		list[i] = e
	}
	return errors.Join(list...)
}

// problems lists the invalid values of c, in file order, then the
// cross-field problems.
func (c Config) problems() []keyError {
	var errs []keyError
	for _, s := range settings() {
		if s.check == nil {
			continue
		}
		if msg := s.check(s.field(&c)); msg != "" {
			errs = append(errs, keyError{key: s.key(), msg: msg})
		}
	}
	if c.Cluster.Token != "" && c.Cluster.TokenFile != "" {
		errs = append(errs, keyError{key: "cluster.cluster_token_file",
			msg: "set only one of cluster.cluster_token and cluster.cluster_token_file"})
	}
	if c.Cluster.InsecureNoToken && (c.Cluster.Token != "" || c.Cluster.TokenFile != "") {
		errs = append(errs, keyError{key: "cluster.insecure_no_token",
			msg: "set either a cluster token (cluster.cluster_token or cluster.cluster_token_file) or insecure_no_token, not both"})
	}
	if c.TLS.Enabled() && (c.TLS.CertFile == "" || c.TLS.KeyFile == "" || c.TLS.CAFile == "") {
		errs = append(errs, keyError{key: "tls.cert_file",
			msg: "set all of tls.cert_file, tls.key_file and tls.ca_file, or none"})
	}
	if c.Notify.WebhookSecret != "" && c.Notify.WebhookSecretFile != "" {
		errs = append(errs, keyError{key: "notify.webhook_secret_file",
			msg: "set only one of notify.webhook_secret and notify.webhook_secret_file"})
	}
	if c.Notify.WebhookSecret == "" && c.Notify.WebhookSecretFile == "" && (len(c.Notify.WebhookURLs) > 0 || len(c.Notify.WebhookAllow) > 0) {
		errs = append(errs, keyError{key: "notify.webhook_secret",
			msg: "required with notify.webhook_urls or notify.webhook_allow (every delivery is signed): set webhook_secret or webhook_secret_file"})
	}
	errs = append(errs, c.stateDirOverlaps()...)
	return append(errs, c.portClashes()...)
}

// stateDirOverlaps reports a runner_state_dir that equals, lies inside or
// contains a directory tasks can see (the runner refuses to start then; the
// same check, symlinks resolved, runs there).
func (c Config) stateDirOverlaps() []keyError {
	state := filepath.Clean(c.Paths.RunnerStateDir)
	var errs []keyError
	for _, o := range []struct{ key, path string }{
		{"paths.local_temp_dir", c.Paths.LocalTempDir}, {"paths.shared_dir", c.Paths.SharedDir},
	} {
		if c.Paths.RunnerStateDir == "" || o.path == "" {
			continue
		}
		other := filepath.Clean(o.path)
		if state == other || within(state, other) || within(other, state) {
			errs = append(errs, keyError{key: "paths.runner_state_dir",
				msg: fmt.Sprintf("%q overlaps %s %q, which tasks can see: keep the runner's state apart", c.Paths.RunnerStateDir, o.key, o.path)})
		}
	}
	return errs
}

// within reports whether clean path p lies strictly inside clean path dir.
func within(p, dir string) bool {
	return strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}

// portClashes reports two non-zero ports of one host replica that are equal.
func (c Config) portClashes() []keyError {
	ports := []struct {
		key string
		val int
	}{
		{"network.host_port", c.Network.HostPort},
		{"network.host_ssh_proxy_port", c.Network.HostSSHProxyPort},
		{"cluster.raft_port", c.Cluster.RaftPort},
		{"cluster.gossip_port", c.Cluster.GossipPort},
	}
	var errs []keyError
	for i := range ports {
		for j := range i {
			if ports[i].val != 0 && ports[i].val == ports[j].val {
				errs = append(errs, keyError{key: ports[i].key,
					msg: fmt.Sprintf("port %d is also %s", ports[i].val, ports[j].key)})
			}
		}
	}
	return errs
}

func port(p any) string {
	if v := *p.(*int); v < 0 || v > 65535 {
		return fmt.Sprintf("must be a port between 0 and 65535, got %d", v)
	}
	return ""
}

func atLeast(n int) func(any) string {
	return func(p any) string {
		if v := *p.(*int); v < n {
			return fmt.Sprintf("must be at least %d, got %d", n, v)
		}
		return ""
	}
}

func between(lo, hi int) func(any) string {
	return func(p any) string {
		if v := *p.(*int); v < lo || v > hi {
			return fmt.Sprintf("must be between %d and %d, got %d", lo, hi, v)
		}
		return ""
	}
}

func anonymousRole(p any) string {
	switch *p.(*string) {
	case "", "none", "viewer", "user", "operator":
		return ""
	}
	return fmt.Sprintf("%q: want none, viewer, user or operator", *p.(*string))
}

func byteSize(p any) string {
	if _, err := api.ParseMemory(*p.(*string)); err != nil {
		return err.Error()
	}
	return ""
}

func nonEmpty(p any) string {
	if strings.TrimSpace(*p.(*string)) == "" {
		return "must not be empty"
	}
	return ""
}

func nonEmptyItems(p any) string {
	for i, v := range *p.(*[]string) {
		if strings.TrimSpace(v) == "" {
			return fmt.Sprintf("entry %d is empty", i+1)
		}
	}
	return ""
}

func nodeID(p any) string {
	if strings.IndexFunc(*p.(*string), unicode.IsSpace) >= 0 {
		return "must not contain spaces"
	}
	return ""
}

func gossipKey(p any) string {
	s := *p.(*string)
	if s == "" {
		return ""
	}
	if _, err := decodeGossipKey(s); err != nil {
		return err.Error()
	}
	return ""
}

func mounts(p any) string {
	for i, m := range *p.(*[]string) {
		if _, err := api.ParseMount(m); err != nil { // the parser submit and the runners use
			return fmt.Sprintf("entry %d: %v", i+1, err)
		}
	}
	return ""
}
