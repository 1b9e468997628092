package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// maxKeyFile bounds an --ssh-key-file.
const maxKeyFile = 1 << 20

// limitFlags are the quota and policy flags users and groups share.
type limitFlags struct {
	cores, gpus, running, vps int
	memory                    string
	privileged, mounts, root  bool
}

// bind registers the quota and policy flags; whose says whose limits they
// are ("the user's", "the group's members' together").
func (l *limitFlags) bind(fl *pflag.FlagSet, whose string) {
	fl.IntVar(&l.cores, "quota-cores", 0, "most CPU cores "+whose+" running tasks may hold (0: no limit)")
	fl.StringVar(&l.memory, "quota-memory", "", "most memory "+whose+" running tasks may hold, e.g. 8G or 512Mi (0: no limit)")
	fl.IntVar(&l.gpus, "quota-gpus", 0, "most GPUs "+whose+" running tasks may hold (0: no limit)")
	fl.IntVar(&l.running, "quota-running", 0, "most tasks "+whose+" may run at once (0: no limit)")
	fl.IntVar(&l.vps, "quota-vps", 0, "most VPS "+whose+" may run at once (0: no limit)")
	fl.BoolVar(&l.privileged, "allow-privileged", false, "allow privileged Docker containers (--allow-privileged=false takes it back)")
	fl.BoolVar(&l.mounts, "allow-mounts", false, "allow additional bind mounts (--allow-mounts=false takes it back)")
	fl.BoolVar(&l.root, "allow-root", false, "allow tasks to run as root (--allow-root=false takes it back)")
}

// quota returns base with the quota flags that were given applied, and
// whether any was.
func (l *limitFlags) quota(fl *pflag.FlagSet, base fsm.Quota) (fsm.Quota, bool, error) {
	q, changed := base, false
	for _, f := range []struct {
		name string
		v    int
		dst  *int
	}{
		{"quota-cores", l.cores, &q.Cores},
		{"quota-gpus", l.gpus, &q.GPUs},
		{"quota-running", l.running, &q.RunningTasks},
		{"quota-vps", l.vps, &q.VPS},
	} {
		if !fl.Changed(f.name) {
			continue
		}
		if f.v < 0 {
			return q, false, fmt.Errorf("invalid --%s %d: must not be negative (0 means no limit)", f.name, f.v)
		}
		*f.dst, changed = f.v, true
	}
	if fl.Changed("quota-memory") {
		n, err := api.ParseMemory(l.memory)
		if err != nil {
			return q, false, fmt.Errorf("invalid --quota-memory %q: %w", l.memory, err)
		}
		q.MemoryBytes, changed = n, true
	}
	return q, changed, nil
}

// policy returns base with the policy flags that were given applied, and
// whether any was.
func (l *limitFlags) policy(fl *pflag.FlagSet, base fsm.Policy) (fsm.Policy, bool) {
	p, changed := base, false
	for _, f := range []struct {
		name string
		v    bool
		dst  *bool
	}{
		{"allow-privileged", l.privileged, &p.Privileged},
		{"allow-mounts", l.mounts, &p.Mounts},
		{"allow-root", l.root, &p.RunAsRoot},
	} {
		if fl.Changed(f.name) {
			*f.dst, changed = f.v, true
		}
	}
	return p, changed
}

// readKeyFiles reads authorized_keys lines from files: every line that is
// neither blank nor a # comment is one key.
func readKeyFiles(files []string) ([]string, error) {
	var keys []string
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("read --ssh-key-file: %w", err)
		}
		b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("read --ssh-key-file %s: %w", name, err)
		}
		if len(b) > maxKeyFile {
			return nil, fmt.Errorf("--ssh-key-file %s: larger than %d bytes: want public keys", name, maxKeyFile)
		}
		if bytes.Contains(b, []byte("PRIVATE KEY")) {
			return nil, fmt.Errorf("--ssh-key-file %s holds a private key: give the public one (.pub)", name)
		}
		n := len(keys)
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, maxKeyFile)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line != "" && !strings.HasPrefix(line, "#") {
				keys = append(keys, line)
			}
		}
		if len(keys) == n {
			return nil, fmt.Errorf("--ssh-key-file %s: no key in it", name)
		}
	}
	return keys, nil
}

// formatQuota renders a quota compactly ("cores=4 mem=8G"), "-" when it
// sets no limit.
func formatQuota(q fsm.Quota) string {
	var parts []string
	add := func(name string, v int) {
		if v > 0 {
			parts = append(parts, name+"="+strconv.Itoa(v))
		}
	}
	add("cores", q.Cores)
	if q.MemoryBytes > 0 {
		parts = append(parts, "mem="+formatBytes(q.MemoryBytes))
	}
	add("gpus", q.GPUs)
	add("running", q.RunningTasks)
	add("vps", q.VPS)
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

// formatPolicy renders what a policy allows ("privileged,mounts"), "-"
// when nothing.
func formatPolicy(p fsm.Policy) string {
	var parts []string
	if p.Privileged {
		parts = append(parts, "privileged")
	}
	if p.Mounts {
		parts = append(parts, "mounts")
	}
	if p.RunAsRoot {
		parts = append(parts, "root")
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ",")
}

// formatList renders names as "a,b" ("-" when none).
func formatList(v []string) string {
	if len(v) == 0 {
		return "-"
	}
	return strings.Join(v, ",")
}

// checkRole rejects a role the cluster does not know, before any call.
func checkRole(flag, r string) (fsm.Role, error) {
	role := fsm.Role(strings.ToLower(strings.TrimSpace(r)))
	if !role.Valid() {
		return "", fmt.Errorf("invalid %s %q: want viewer, user, operator or admin", flag, r)
	}
	return role, nil
}
