package docker

// VPS tasks. A VPS is a persistent container named hakuriver-vps-<id>, made
// from the task's environment image like a command task and limited the same
// way, whose main process is sshd:
//
//   - the owner's public key is copied into the created container as
//     /root/.ssh/authorized_keys (0600, /root/.ssh 0700) before it starts;
//   - its entrypoint (vpsScript) generates missing host keys with
//     `ssh-keygen -A`, creates /run/sshd and execs `/usr/sbin/sshd -D -e`
//     with password logins off;
//   - container port 22/tcp is published on a port of the runner host that
//     Docker picks, on Config.VPSHostIP (0.0.0.0 by default); List reports
//     it as State.SSHPort;
//   - the restart policy is unless-stopped, as in the original: the VPS
//     comes back after a Docker or machine restart (possibly on another
//     port, which List then reports), but not after Kill;
//   - with Cores > 0 it is pinned to that many CPUs (cpuset) besides the
//     CPU quota, so that nproc and os.cpu_count() in it show its cores: the
//     quota alone leaves every host CPU visible. The CPUs are those of its
//     NUMA node when it has one, else the runner's, and the ones the fewest
//     other VPS containers of this runner are pinned to.
//
// Its hostname is its container name. Start returns once sshd greets on
// the published port (until then List leaves the VPS out, so that its runner
// reports it running only once it can be reached), and fails with the
// container's log when it does not; an image without /usr/sbin/sshd fails
// before anything starts. Kill, Pause, Resume, List and Forget work as for
// command tasks: the container is kept after it ends until Forget.

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/docker/go-connections/nat"
	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"

	"github.com/hakuriver/hakuriver-ha/ops/environment"
	"github.com/hakuriver/hakuriver-ha/runner/executor"
	"github.com/hakuriver/hakuriver-ha/runner/resources"
)

const (
	// vpsPort is sshd's port inside a VPS container.
	vpsPort nat.Port = "22/tcp"
	// sshdPath is where a VPS image must have sshd.
	sshdPath = "/usr/sbin/sshd"
	// defaultSSHDWait bounds how long Start waits for a new VPS's sshd to
	// greet (Executor.sshdWait).
	defaultSSHDWait = 20 * time.Second
)

// vpsScript is a VPS container's entrypoint (run by /bin/sh as root). It
// runs again at every restart of the container.
const vpsScript = `set -e
mkdir -p /root/.ssh /run/sshd
chown 0:0 /root /root/.ssh /root/.ssh/authorized_keys
chmod 700 /root/.ssh
chmod 600 /root/.ssh/authorized_keys
chmod 755 /run/sshd
if command -v ssh-keygen >/dev/null 2>&1; then ssh-keygen -A; fi
exec ` + sshdPath + ` -D -e -o PermitRootLogin=prohibit-password -o PasswordAuthentication=no -o AuthorizedKeysFile=.ssh/authorized_keys
`

// VPSContainerName is the name of VPS task id's container.
func VPSContainerName(id int64) string { return "hakuriver-vps-" + strconv.FormatInt(id, 10) }

// isVPS reports whether a spec is a VPS task.
func isVPS(s executor.Spec) bool { return s.TaskType == executor.TaskVPS }

// nameOf returns the container name of task id from its labels.
func nameOf(id int64, labels map[string]string) string {
	if labels[LabelTaskType] == executor.TaskVPS {
		return VPSContainerName(id)
	}
	return ContainerName(id)
}

// authorizedKeys validates a VPS's public keys and returns them as an
// authorized_keys file: one key per line, blank lines and comments dropped.
func authorizedKeys(text string) ([]byte, error) {
	var b bytes.Buffer
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line)); err != nil {
			return nil, fmt.Errorf("%w: VPS public key %q: not an OpenSSH public key (%v)", environment.ErrInvalid, truncateKey(line), err)
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	if b.Len() == 0 {
		return nil, fmt.Errorf("%w: VPS public key: empty; give an OpenSSH public key such as the contents of ~/.ssh/id_ed25519.pub", environment.ErrInvalid)
	}
	return b.Bytes(), nil
}

func truncateKey(s string) string {
	if len(s) > 40 {
		return s[:37] + "..."
	}
	return s
}

// vpsNetwork is the network of VPS containers: NetworkMode, unless that
// cannot publish ports.
func (e *Executor) vpsNetwork() container.NetworkMode {
	switch e.cfg.NetworkMode {
	case "", "host", "none":
		return "bridge"
	}
	return container.NetworkMode(e.cfg.NetworkMode)
}

// vpsHostIP is the address VPS ports are published on.
func (e *Executor) vpsHostIP() string {
	if e.cfg.VPSHostIP == "" {
		return "0.0.0.0"
	}
	return e.cfg.VPSHostIP
}

// vpsConfig maps a VPS spec onto its container's configuration; the cpuset
// is chosen later (pickVPSCPUs).
func (e *Executor) vpsConfig(s executor.Spec) (*container.Config, *container.HostConfig, error) {
	cfg, hc, err := e.containerConfig(s)
	if err != nil {
		return nil, nil, err
	}
	cfg.Entrypoint = []string{"/bin/sh", "-c", vpsScript}
	cfg.Cmd = nil
	cfg.User = "0:0"
	cfg.Hostname = VPSContainerName(s.TaskID)
	cfg.ExposedPorts = nat.PortSet{vpsPort: {}}
	cfg.Labels[LabelTaskType] = executor.TaskVPS
	delete(cfg.Labels, LabelStdout)
	delete(cfg.Labels, LabelStderr)
	hc.NetworkMode = e.vpsNetwork()
	hc.PortBindings = nat.PortMap{vpsPort: {{HostIP: e.vpsHostIP(), HostPort: ""}}}
	hc.RestartPolicy = container.RestartPolicy{Name: container.RestartPolicyUnlessStopped}
	return cfg, hc, nil
}

// startVPS syncs the image, creates, prepares and starts a VPS container
// and waits for its sshd. On failure the container is removed.
func (e *Executor) startVPS(ctx context.Context, s executor.Spec) error {
	name := VPSContainerName(s.TaskID)
	cfg, hc, err := e.vpsConfig(s)
	if err != nil {
		return err
	}
	keys, err := authorizedKeys(s.PublicKey)
	if err != nil {
		return err
	}
	run, err := e.sync.Sync(ctx, s.Image, recordedOf(s))
	if err != nil {
		return fmt.Errorf("prepare environment image %s: %w", s.Image, err)
	}
	cfg.Image = run
	// Choosing CPUs and creating the container is one step, so that two
	// VPS tasks starting at once see each other's cpuset.
	e.vpsMu.Lock()
	cpus, err := e.pickVPSCPUs(ctx, s)
	if err != nil {
		e.vpsMu.Unlock()
		return err
	}
	hc.Resources.CpusetCpus = cpus
	resp, err := e.cli.ContainerCreate(ctx, cfg, hc, nil, nil, name)
	e.vpsMu.Unlock()
	if err != nil {
		return fmt.Errorf("create container %s: %w", name, translate(err))
	}
	if err := e.prepareVPS(ctx, resp.ID, run, keys); err != nil {
		return e.removeFailed(resp.ID, err)
	}
	if err := e.cli.ContainerStart(ctx, resp.ID, container.StartOptions{}); err != nil {
		return e.failStart(resp.ID, name, err)
	}
	port, err := e.awaitSSHD(ctx, resp.ID, name)
	if err != nil {
		return e.removeFailed(resp.ID, err)
	}
	e.track(s.TaskID, cfg.Labels, time.Now())
	e.log.Info("VPS container started", keyTaskID, s.TaskID, keyContainer, name, keyImage, run, "ssh_port", port, "cpus", cpus)
	return nil
}

// removeFailed removes a VPS container that could not be made to work and
// returns cause (joined with a removal error; nil when both are nil).
func (e *Executor) removeFailed(id string, cause error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true}); err != nil && !errors.Is(translate(err), environment.ErrNotFound) {
		return errors.Join(cause, fmt.Errorf("remove the container: %w", translate(err)))
	}
	return cause
}

// prepareVPS checks that a created (not started) VPS container has sshd
// and installs the authorized keys in it.
func (e *Executor) prepareVPS(ctx context.Context, id, image string, keys []byte) error {
	if _, err := e.cli.ContainerStatPath(ctx, id, sshdPath); err != nil {
		if errors.Is(translate(err), environment.ErrNotFound) {
			return fmt.Errorf("%w: environment image %s has no %s: a VPS needs an environment with an SSH server "+
				"(install openssh-server in it, e.g. with `hakuriver docker shell`, and save a new tarball)", environment.ErrInvalid, image, sshdPath)
		}
		return fmt.Errorf("look for %s in the image: %w", sshdPath, translate(err))
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	hdrs := []*tar.Header{
		{Typeflag: tar.TypeDir, Name: "root/.ssh/", Mode: 0o700, ModTime: now},
		{Typeflag: tar.TypeReg, Name: "root/.ssh/authorized_keys", Mode: 0o600, Size: int64(len(keys)), ModTime: now},
	}
	for _, h := range hdrs {
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("pack authorized_keys: %w", err)
		}
	}
	if _, err := tw.Write(keys); err != nil {
		return fmt.Errorf("pack authorized_keys: %w", err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("pack authorized_keys: %w", err)
	}
	if err := e.cli.CopyToContainer(ctx, id, "/", &buf, container.CopyToContainerOptions{}); err != nil {
		return fmt.Errorf("install the public key in the VPS: %w", translate(err))
	}
	return nil
}

// awaitSSHD waits until the VPS's sshd greets ("SSH-2.0-...") on its
// published port, and returns that port. When it does not within sshdWait
// the error carries the container's state and the tail of its log.
func (e *Executor) awaitSSHD(parent context.Context, id, name string) (int, error) {
	ctx, cancel := context.WithTimeout(parent, e.sshdWait)
	defer cancel()
	var port int
	var last error
	for {
		ins, err := e.cli.ContainerInspect(ctx, id)
		switch {
		case err != nil && ctx.Err() != nil:
			// the deadline: keep the last real reason
		case err != nil:
			last = fmt.Errorf("inspect: %w", translate(err))
		case ins.State != nil && (!ins.State.Running || ins.State.Restarting || ins.RestartCount > 0):
			// sshd (the container's main process) ended: no use waiting.
			return 0, e.sshdFailure(name, id, port, errSSHDStopped)
		default:
			if port = publishedPort(ins); port == 0 {
				last = errors.New("no host port published for 22/tcp")
			} else if last = e.greet(ctx, port); last == nil {
				return port, nil
			}
		}
		select {
		case <-ctx.Done():
			if err := parent.Err(); err != nil {
				return 0, fmt.Errorf("wait for sshd in %s: %w", name, err)
			}
			return 0, e.sshdFailure(name, id, port, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// greet dials the VPS's published port and reads sshd's banner.
func (e *Executor) greet(ctx context.Context, port int) error {
	host := e.vpsHostIP()
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	d := net.Dialer{Timeout: 2 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second)) //nolint:errcheck // a failed deadline shows as a read error
	line, err := bufio.NewReader(conn).ReadString('\n')
	if !strings.HasPrefix(line, "SSH-") {
		if err == nil {
			err = fmt.Errorf("unexpected greeting %q", strings.TrimSpace(line))
		}
		return fmt.Errorf("read the SSH banner: %w", err)
	}
	return nil
}

// sshdFailure describes a VPS whose sshd did not come up.
// errSSHDStopped is why awaitSSHD gives up early: the container's main
// process, sshd, ended.
var errSSHDStopped = errors.New("the container stopped")

func (e *Executor) sshdFailure(name, id string, port int, last error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	state := "unknown"
	if ins, err := e.cli.ContainerInspect(ctx, id); err == nil && ins.State != nil {
		state = fmt.Sprintf("%s, exit code %d, %d restarts", ins.State.Status, ins.State.ExitCode, ins.RestartCount)
	}
	where := ""
	if port > 0 {
		where = fmt.Sprintf(" on port %d", port)
	}
	msg := fmt.Sprintf("sshd in %s did not answer%s within %s (container %s): %v", name, where, e.sshdWait, state, last)
	if errors.Is(last, errSSHDStopped) {
		msg = fmt.Sprintf("sshd in %s stopped before it answered%s (container %s)", name, where, state)
	}
	if logs := e.logTail(ctx, id, 15); logs != "" {
		msg += "; its log: " + logs
	}
	return errors.New(msg)
}

// logTail returns the distinct lines among the last n of a container's
// output, joined into one line.
func (e *Executor) logTail(ctx context.Context, id string, n int) string {
	rc, err := e.cli.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: strconv.Itoa(n)})
	if err != nil {
		return ""
	}
	defer rc.Close()
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, rc); err != nil && out.Len() == 0 {
		return ""
	}
	var lines []string
	for _, l := range strings.Split(out.String(), "\n") {
		if l = strings.TrimSpace(l); l != "" && !slices.Contains(lines, l) {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, " | ")
}

// publishedPort returns the host port of an inspected VPS container's
// 22/tcp, preferring an IPv4 binding; 0 when none.
func publishedPort(ins container.InspectResponse) int {
	if ins.NetworkSettings == nil {
		return 0
	}
	best := 0
	for _, b := range ins.NetworkSettings.Ports[vpsPort] {
		p, err := strconv.Atoi(b.HostPort)
		if err != nil || p <= 0 {
			continue
		}
		if best == 0 || !strings.Contains(b.HostIP, ":") {
			best = p
		}
	}
	return best
}

// listedPort is publishedPort for a container of ContainerList.
func listedPort(c container.Summary) int {
	best := 0
	for _, p := range c.Ports {
		if p.PrivatePort != 22 || p.Type != "tcp" || p.PublicPort == 0 {
			continue
		}
		if best == 0 || !strings.Contains(p.IP, ":") {
			best = int(p.PublicPort)
		}
	}
	return best
}

// pickVPSCPUs returns the cpuset of a new VPS: s.Cores CPUs out of its NUMA
// node's CPUs (s.CPUs) or the runner's, the least used by this runner's
// other VPS containers first, lowest number on ties. Without a core count,
// or with more cores than CPUs to choose from, it is s.CPUs unchanged (the
// CPU quota alone then limits the VPS). The caller holds vpsMu.
func (e *Executor) pickVPSCPUs(ctx context.Context, s executor.Spec) (string, error) {
	pool := s.CPUs
	if len(pool) == 0 {
		pool = hostCPUs()
	}
	if s.Cores <= 0 || s.Cores > len(pool) {
		return joinInts(s.CPUs), nil
	}
	list, err := e.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(
		filters.Arg("label", LabelTaskType+"="+executor.TaskVPS), filters.Arg("label", LabelRunner+"="+e.cfg.RunnerName))})
	if err != nil {
		return "", fmt.Errorf("list VPS containers: %w", translate(err))
	}
	used := map[int]int{}
	for _, c := range list {
		if c.State == container.StateExited || c.State == container.StateDead || c.State == container.StateRemoving {
			continue
		}
		ins, err := e.cli.ContainerInspect(ctx, c.ID)
		if err != nil || ins.HostConfig == nil {
			continue // gone meanwhile
		}
		cpus, err := resources.ParseCPUList(ins.HostConfig.CpusetCpus)
		if err != nil {
			continue
		}
		for _, cpu := range cpus {
			used[cpu]++
		}
	}
	pick := slices.Clone(pool)
	slices.SortStableFunc(pick, func(a, b int) int {
		if used[a] != used[b] {
			return used[a] - used[b]
		}
		return a - b
	})
	pick = pick[:s.Cores]
	slices.Sort(pick)
	return resources.FormatCPUList(pick), nil
}

// hostCPUs returns the CPUs this process may run on (its affinity mask),
// which the engine's containers may use too; nil when unknown.
func hostCPUs() []int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil
	}
	n := set.Count()
	cpus := make([]int, 0, n)
	for i := 0; len(cpus) < n && i < 1<<16; i++ {
		if set.IsSet(i) {
			cpus = append(cpus, i)
		}
	}
	return cpus
}
