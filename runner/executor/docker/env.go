package docker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/hakuriver/hakuriver-ha/ops/environment"
)

// keepAlive keeps an environment container running with nothing but
// /bin/sh and sleep, and lets `docker stop` end it at once. create_tar
// restores the source image's own entrypoint and command in the committed
// image.
var keepAlive = []string{"/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"}

// stopTimeout is how long Stop waits before killing an environment.
const stopTimeout = 10

// Manager manages a host replica's environment containers and their
// tarballs. It is safe for concurrent use; operations on one environment
// are serialised.
type Manager struct {
	cfg Config
	cli *client.Client
	log *slog.Logger

	// cluster is the ID the Manager labels with and is confined to (""
	// for an unscoped Manager: every environment of the engine); adopt
	// says whether an unlabelled environment (made before clusters had
	// IDs) is this cluster's.
	cluster string
	adopt   func(name string) bool

	locks *envLocks
}

// envLocks serialises operations per environment name, shared by a Manager
// and its scoped views.
type envLocks struct {
	mu sync.Mutex
	m  map[string]chan struct{}
}

// NewManager returns a Manager for cfg (SharedDir, ContainerDir,
// KeepTarballs, Logger). It does not contact the engine: a replica without
// Docker still starts, and its environment calls fail with environment.ErrUnavailable.
func NewManager(cfg Config) (*Manager, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	cli, err := newClient()
	if err != nil {
		return nil, err
	}
	return &Manager{cfg: cfg, cli: cli, log: cfg.Logger.With("component", "docker"), locks: &envLocks{m: map[string]chan struct{}{}}}, nil
}

// Scoped returns a view of m confined to cluster: it labels what it
// creates with LabelCluster=cluster, and lists, inspects, changes and
// deletes only environments carrying that label, plus unlabelled ones
// (created before clusters had IDs) for which adopt (when set) says yes.
// Another cluster's environment of the same name is environment.ErrNotFound. The view
// shares m's engine connection and locks; closing m closes it.
func (m *Manager) Scoped(cluster string, adopt func(name string) bool) *Manager {
	v := *m
	v.cluster, v.adopt = cluster, adopt
	v.log = m.log.With("cluster", cluster)
	return &v
}

// ours reports whether an environment container with these labels belongs
// to m's cluster.
func (m *Manager) ours(name string, labels map[string]string) bool {
	switch c := labels[LabelCluster]; {
	case m.cluster == "" || c == m.cluster:
		return true
	case c == "":
		return m.adopt != nil && m.adopt(name)
	}
	return false
}

// Close releases the engine connection. A nil Manager is a no-op.
func (m *Manager) Close() error {
	if m == nil {
		return nil
	}
	return m.cli.Close()
}

// Ping checks that the engine answers.
func (m *Manager) Ping(ctx context.Context) error { return ping(ctx, m.cli) }

// TarballDir is the directory tarballs are saved in.
func (m *Manager) TarballDir() string { return m.cfg.tarballDir() }

// lock serialises operations on one environment.
func (m *Manager) lock(ctx context.Context, name string) (unlock func(), err error) {
	m.locks.mu.Lock()
	ch := m.locks.m[name]
	if ch == nil {
		ch = make(chan struct{}, 1)
		m.locks.m[name] = ch
	}
	m.locks.mu.Unlock()
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for another operation on environment %s: %w", name, ctx.Err())
	}
}

// inspectEnv returns the environment container name. environment.ErrNotFound when
// there is none; environment.ErrConflict when a container of that name exists but is
// not a HakuRiver environment.
func (m *Manager) inspectEnv(ctx context.Context, name string) (container.InspectResponse, error) {
	if err := environment.CheckName(name); err != nil {
		return container.InspectResponse{}, err
	}
	c, err := m.cli.ContainerInspect(ctx, name)
	if err != nil {
		err = translate(err)
		if errors.Is(err, environment.ErrNotFound) {
			return c, fmt.Errorf("%w: environment container %q does not exist on this replica", environment.ErrNotFound, name)
		}
		return c, fmt.Errorf("inspect container %s: %w", name, err)
	}
	if c.Config == nil || c.Config.Labels[LabelEnvironment] != name || strings.TrimPrefix(c.Name, "/") != name {
		return c, fmt.Errorf("%w: container %q exists but is not a HakuRiver environment", environment.ErrConflict, name)
	}
	if !m.ours(name, c.Config.Labels) {
		return c, fmt.Errorf("%w: environment container %q does not exist in this cluster (a container of that name on this replica's Docker belongs to another cluster)", environment.ErrNotFound, name)
	}
	return c, nil
}

// CreateEnvironment creates environment container name from a local image
// (pulled when missing and a registry is reachable) and starts it, kept
// running by a sleep loop. created is false when it already existed.
func (m *Manager) CreateEnvironment(ctx context.Context, img, name string) (created bool, err error) {
	if err := environment.CheckName(name); err != nil {
		return false, err
	}
	img = strings.ToLower(strings.TrimSpace(img))
	if img == "" {
		return false, fmt.Errorf("%w: image_name: must not be empty", environment.ErrInvalid)
	}
	unlock, err := m.lock(ctx, name)
	if err != nil {
		return false, err
	}
	defer unlock()
	if c, err := m.inspectEnv(ctx, name); err == nil || !errors.Is(err, environment.ErrNotFound) {
		return false, err
	} else if c.ContainerJSONBase != nil {
		return false, fmt.Errorf("%w: environment name %q is taken on this replica's Docker by another cluster", environment.ErrConflict, name)
	}
	if err := m.ensureImage(ctx, img); err != nil {
		return false, err
	}
	resp, err := m.cli.ContainerCreate(ctx, &container.Config{
		Image:      img,
		Entrypoint: keepAlive,
		Cmd:        []string{},
		Labels:     m.labels(map[string]string{LabelRole: roleEnvironment, LabelEnvironment: name}),
	}, &container.HostConfig{
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyUnlessStopped},
	}, nil, nil, name)
	if err != nil {
		return false, fmt.Errorf("create container %s from %s: %w", name, img, translate(err))
	}
	if err := m.cli.ContainerStart(ctx, resp.ID, container.StartOptions{}); err != nil {
		rmErr := m.cli.ContainerRemove(context.WithoutCancel(ctx), resp.ID, container.RemoveOptions{Force: true})
		return false, errors.Join(fmt.Errorf("start container %s: %w", name, translate(err)), translate(rmErr))
	}
	m.log.Info("environment container created", keyEnv, name, keyImage, img)
	return true, nil
}

// labels adds LabelCluster to l when m is scoped.
func (m *Manager) labels(l map[string]string) map[string]string {
	if m.cluster != "" {
		l[LabelCluster] = m.cluster
	}
	return l
}

// ensureImage makes img available locally, pulling it when it is missing.
func (m *Manager) ensureImage(ctx context.Context, img string) error {
	_, err := m.cli.ImageInspect(ctx, img)
	if err == nil {
		return nil
	}
	if err = translate(err); !errors.Is(err, environment.ErrNotFound) {
		return fmt.Errorf("inspect image %s: %w", img, err)
	}
	m.log.Info("image not present; pulling", keyImage, img)
	rc, perr := m.cli.ImagePull(ctx, img, image.PullOptions{})
	if perr == nil {
		perr = drainJSONMessages(rc, nil)
		rc.Close()
	}
	if perr != nil {
		if errors.Is(translate(perr), environment.ErrUnavailable) {
			return fmt.Errorf("pull image %s: %w", img, translate(perr))
		}
		return fmt.Errorf("%w: image %q is not on this replica and could not be pulled: %v", environment.ErrNotFound, img, perr)
	}
	return nil
}

// Environments lists the environment containers of this engine by name.
func (m *Manager) Environments(ctx context.Context) ([]environment.Container, error) {
	list, err := m.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", LabelEnvironment))})
	if err != nil {
		return nil, fmt.Errorf("list environment containers: %w", translate(err))
	}
	out := []environment.Container{}
	for _, c := range list {
		env := c.Labels[LabelEnvironment]
		// Images committed from an environment carry its label, and so do
		// containers made from them: only the container named after the
		// label is the environment itself.
		if len(c.Names) == 0 || strings.TrimPrefix(c.Names[0], "/") != env || !m.ours(env, c.Labels) {
			continue
		}
		out = append(out, environment.Container{ID: shortID(c.ID), Name: env, Image: c.Image, Status: c.Status, State: c.State, Created: time.Unix(c.Created, 0).UTC()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// StartEnvironment starts a stopped environment container (a no-op when it
// runs).
func (m *Manager) StartEnvironment(ctx context.Context, name string) error {
	return m.withEnv(ctx, name, func(c container.InspectResponse) error {
		if err := m.cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
			return fmt.Errorf("start environment %s: %w", name, translate(err))
		}
		return nil
	})
}

// StopEnvironment stops an environment container (a no-op when it is
// stopped).
func (m *Manager) StopEnvironment(ctx context.Context, name string) error {
	return m.withEnv(ctx, name, func(c container.InspectResponse) error {
		if c.State != nil && c.State.Paused {
			if err := m.cli.ContainerUnpause(ctx, c.ID); err != nil {
				return fmt.Errorf("unpause environment %s: %w", name, translate(err))
			}
		}
		t := stopTimeout
		if err := m.cli.ContainerStop(ctx, c.ID, container.StopOptions{Timeout: &t}); err != nil {
			return fmt.Errorf("stop environment %s: %w", name, translate(err))
		}
		return nil
	})
}

// DeleteEnvironment removes an environment container, running or not. Its
// image and tarballs stay.
func (m *Manager) DeleteEnvironment(ctx context.Context, name string) error {
	return m.withEnv(ctx, name, func(c container.InspectResponse) error {
		if err := m.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil {
			return fmt.Errorf("delete environment %s: %w", name, translate(err))
		}
		m.log.Info("environment container deleted", keyEnv, name)
		return nil
	})
}

// withEnv runs f on environment name under its lock.
func (m *Manager) withEnv(ctx context.Context, name string, f func(container.InspectResponse) error) error {
	if err := environment.CheckName(name); err != nil {
		return err
	}
	unlock, err := m.lock(ctx, name)
	if err != nil {
		return err
	}
	defer unlock()
	c, err := m.inspectEnv(ctx, name)
	if err != nil {
		return err
	}
	return f(c)
}

// CreateTarball commits environment name to hakuriver/<name>:base, labelled
// with its version and (when scoped) its cluster, and saves it as
// <SharedDir>/<ContainerDir>/<name>-<version>.tar: written to a temporary
// file while hashing it (environment.Tarball.SHA256), synced and renamed, so a runner
// never sees half a tarball. The version is a Unix timestamp newer than
// after (the caller's last recorded version) and than the existing
// tarballs, except those from the future (more than environment.MaxVersionSkew ahead),
// which are removed with the versions beyond the newest KeepTarballs. The
// container keeps running (it is paused during the commit). progress, when
// set, is called from this goroutine.
func (m *Manager) CreateTarball(ctx context.Context, name string, after int64, progress func(environment.Progress)) (environment.Tarball, error) {
	if progress == nil {
		progress = func(environment.Progress) {}
	}
	if err := environment.CheckName(name); err != nil {
		return environment.Tarball{}, err
	}
	unlock, err := m.lock(ctx, name)
	if err != nil {
		return environment.Tarball{}, err
	}
	defer unlock()
	c, err := m.inspectEnv(ctx, name)
	if err != nil {
		return environment.Tarball{}, err
	}
	start := time.Now()
	tb, pruned, err := m.commitTarball(ctx, c, name, after, m.cfg.KeepTarballs, progress)
	if err != nil {
		return environment.Tarball{}, err
	}
	m.log.Info("environment tarball created", keyEnv, name, keyTarball, tb.Path, keyBytes, tb.Size,
		keyVersion, tb.Version, "pruned", pruned, keyTook, time.Since(start).Round(time.Millisecond))
	return tb, nil
}

// commitTarball commits container c into environment name's image and
// saves it as a new tarball version (newer than after and than the
// tarballs there, except those from the future), then keeps the newest
// keep versions; it returns the tarball and how many were pruned. Both
// an environment's create-tar and a VPS snapshot make their tarballs here.
func (m *Manager) commitTarball(ctx context.Context, c container.InspectResponse, name string, after int64, keep int, progress func(environment.Progress)) (environment.Tarball, int, error) {
	dir := m.cfg.tarballDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return environment.Tarball{}, 0, fmt.Errorf("create tarball directory: %w", err)
	}
	now := time.Now()
	version := max(now.Unix(), after+1)
	all, err := environment.ListTarballs(dir)
	if err != nil {
		return environment.Tarball{}, 0, err
	}
	for _, tb := range all[name] {
		if tb.Version > now.Add(environment.MaxVersionSkew).Unix() {
			m.log.Warn("ignoring an environment tarball from the future", keyEnv, name, keyTarball, tb.Path, keyVersion, tb.Version)
			continue
		}
		version = max(version, tb.Version+1)
	}
	tag := environment.ImageName(name)
	progress(environment.Progress{Stage: "commit"})
	if err := m.commit(ctx, c, tag, version); err != nil {
		return environment.Tarball{}, 0, err
	}
	var total int64
	if ii, err := m.cli.ImageInspect(ctx, tag); err == nil {
		total = ii.Size
	}
	path, size, sum, err := m.save(ctx, tag, dir, environment.TarballName(name, version), total, progress)
	if err != nil {
		return environment.Tarball{}, 0, err
	}
	removed, err := pruneTarballs(dir, name, max(keep, 1), version)
	if err != nil {
		m.log.Warn("prune old tarballs", keyEnv, name, keyErr, err)
	}
	progress(environment.Progress{Stage: "done", Bytes: size, Total: size})
	return environment.Tarball{Env: name, Version: version, Path: path, Size: size, SHA256: sum}, len(removed), nil
}

// commit commits c to tag with the version label, restoring the source
// image's entrypoint and command in place of the keep-alive loop, and
// removes the image the tag named before when nothing else uses it.
func (m *Manager) commit(ctx context.Context, c container.InspectResponse, tag string, version int64) error {
	var entrypoint, cmd []string
	if src, err := m.cli.ImageInspect(ctx, c.Image); err == nil && src.Config != nil {
		entrypoint, cmd = src.Config.Entrypoint, src.Config.Cmd
	} else if err != nil {
		return fmt.Errorf("inspect source image of %s: %w", c.Name, translate(err))
	}
	// The engine fills unset fields of Config from the container's own
	// configuration; a non-nil empty Entrypoint stays empty.
	if entrypoint == nil {
		entrypoint = []string{}
	}
	cfg := &container.Config{
		Entrypoint: entrypoint,
		Cmd:        cmd,
		Labels:     m.labels(map[string]string{LabelVersion: strconv.FormatInt(version, 10), LabelEnvironment: strings.TrimPrefix(c.Name, "/")}),
	}
	var oldID string
	if old, err := m.cli.ImageInspect(ctx, tag); err == nil {
		oldID = old.ID
	}
	resp, err := m.cli.ContainerCommit(ctx, c.ID, container.CommitOptions{Reference: tag, Pause: true, Config: cfg, Comment: "hakuriver create_tar"})
	if err != nil {
		return fmt.Errorf("commit %s to %s: %w", strings.TrimPrefix(c.Name, "/"), tag, translate(err))
	}
	if m.cluster != "" {
		// This cluster's runners on this engine then need no load.
		env := strings.TrimPrefix(c.Name, "/")
		if err := m.cli.ImageTag(ctx, resp.ID, environment.ScopedImageName(env, m.cluster)); err != nil {
			return fmt.Errorf("tag %s: %w", environment.ScopedImageName(env, m.cluster), translate(err))
		}
	}
	if oldID != "" && oldID != resp.ID {
		// The previous version is now untagged; drop it unless a container
		// still uses it.
		if _, err := m.cli.ImageRemove(ctx, oldID, image.RemoveOptions{PruneChildren: true}); err != nil {
			m.log.Debug("previous environment image kept", keyImage, oldID, keyErr, err)
		}
	}
	return nil
}

// save writes `docker save tag` to dir/file through a temporary file and
// returns its path, size and hex SHA-256.
func (m *Manager) save(ctx context.Context, tag, dir, file string, total int64, progress func(environment.Progress)) (string, int64, string, error) {
	rc, err := m.cli.ImageSave(ctx, []string{tag})
	if err != nil {
		return "", 0, "", fmt.Errorf("save image %s: %w", tag, translate(err))
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(dir, "."+file+".*.tmp")
	if err != nil {
		return "", 0, "", fmt.Errorf("create temporary tarball: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()           //nolint:errcheck // already failing
			os.Remove(tmp.Name()) //nolint:errcheck // best effort cleanup of our own temp file
		}
	}()
	progress(environment.Progress{Stage: "save", Total: total})
	h := sha256.New()
	pw := &progressWriter{w: io.MultiWriter(tmp, h), total: total, report: progress, every: 250 * time.Millisecond}
	n, err := io.Copy(pw, rc)
	if err != nil {
		return "", 0, "", fmt.Errorf("save image %s to %s: %w", tag, tmp.Name(), translate(err))
	}
	progress(environment.Progress{Stage: "save", Bytes: n, Total: max(total, n)})
	if err := tmp.Sync(); err != nil {
		return "", 0, "", fmt.Errorf("sync tarball: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", 0, "", fmt.Errorf("close tarball: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return "", 0, "", fmt.Errorf("chmod tarball: %w", err)
	}
	path := dir + string(os.PathSeparator) + file
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", 0, "", fmt.Errorf("rename tarball into place: %w", err)
	}
	ok = true
	return path, n, hex.EncodeToString(h.Sum(nil)), nil
}

// progressWriter counts bytes and reports them at most every `every`.
type progressWriter struct {
	w      io.Writer
	n      int64
	total  int64
	last   time.Time
	every  time.Duration
	report func(environment.Progress)
}

// Write implements io.Writer.
func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.n += int64(n)
	if now := time.Now(); now.Sub(p.last) >= p.every {
		p.last = now
		p.report(environment.Progress{Stage: "save", Bytes: p.n, Total: max(p.total, p.n)})
	}
	return n, err
}

// jsonMessage is one line of the engine's pull/load progress stream.
type jsonMessage struct {
	Stream      string `json:"stream"`
	Status      string `json:"status"`
	Error       string `json:"error"`
	ErrorDetail *struct {
		Message string `json:"message"`
	} `json:"errorDetail"`
}

// drainJSONMessages reads a progress stream to its end, passing each
// message to each (when set), and returns the first error message in it.
func drainJSONMessages(r io.Reader, each func(jsonMessage)) error {
	dec := json.NewDecoder(r)
	for {
		var msg jsonMessage
		if err := dec.Decode(&msg); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read engine progress: %w", err)
		}
		if msg.ErrorDetail != nil && msg.ErrorDetail.Message != "" {
			return errors.New(msg.ErrorDetail.Message)
		}
		if msg.Error != "" {
			return errors.New(msg.Error)
		}
		if each != nil {
			each(msg)
		}
	}
}
