package docker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/hakuriver/hakuriver-ha/ops/environment"
)

// maxLoadTime bounds one `docker load`.
const maxLoadTime = 30 * time.Minute

// Syncer brings a runner's environment images up to date with the tarball
// the cluster recorded for them (Recorded), never another file in shared
// storage. Concurrent Syncs of one environment share a
// single check-and-load; a load keeps going when the caller that started it
// gives up, so that its retry finds it done. It is safe for concurrent use.
type Syncer struct {
	cli *client.Client
	dir string
	log *slog.Logger

	// life is the syncer's lifetime (not a request's), the parent of its
	// loads; Close cancels it.
	life   context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	inflight map[string]*syncCall
	// loaded is the tarball version last loaded per image to run, so that
	// a tarball whose image is labelled otherwise than its file name is
	// not loaded again before every task.
	loaded map[string]int64
	// refused holds the unrecorded tarballs already logged, once each.
	refused map[string]bool
	loads   atomic.Int64 // docker loads performed (tests)
}

type syncCall struct {
	done chan struct{}
	err  error
}

// NewSyncer returns a Syncer reading tarballs from
// <SharedDir>/<ContainerDir> (cfg's SharedDir, ContainerDir, Logger).
func NewSyncer(cfg Config) (*Syncer, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	cli, err := newClient()
	if err != nil {
		return nil, err
	}
	return newSyncer(cfg, cli), nil
}

func newSyncer(cfg Config, cli *client.Client) *Syncer {
	life, cancel := context.WithCancel(context.Background())
	return &Syncer{
		cli: cli, dir: cfg.tarballDir(), log: cfg.Logger.With("component", "docker-sync"),
		life: life, cancel: cancel, inflight: map[string]*syncCall{}, loaded: map[string]int64{}, refused: map[string]bool{},
	}
}

// Close cancels loads in progress and waits for them.
func (s *Syncer) Close() {
	s.cancel()
	s.wg.Wait()
}

// Recorded is what the cluster recorded for an environment, as the host
// sends it with each task: the cluster's ID and the newest tarball's
// version and SHA-256 (zero when none was recorded).
type Recorded struct {
	Cluster string
	Version int64
	SHA256  string
	Size    int64
}

// Sync makes image ready to run and returns the name to run it by. For
// hakuriver/<env>:base that is the environment's image of this cluster
// (environment.ScopedImageName), loaded from <env>-<rec.Version>.tar when the local one
// is missing or of another version, and only if the file's SHA-256 is
// rec.SHA256: a tarball the cluster did not record (another version, one
// from the future, a replaced file) is never loaded, and an environment
// without a recorded tarball runs only from an image already on this
// runner. Any other image must already be local. A tarball that does not
// load gives an error naming its file.
func (s *Syncer) Sync(ctx context.Context, image string, rec Recorded) (string, error) {
	env := environment.EnvOfImage(image)
	if env == "" {
		if _, err := s.cli.ImageInspect(ctx, image); err != nil {
			return "", fmt.Errorf("image %s: %w", image, translate(err))
		}
		return image, nil
	}
	run := environment.ScopedImageName(env, rec.Cluster)
	s.mu.Lock()
	c := s.inflight[run]
	if c == nil {
		c = &syncCall{done: make(chan struct{})}
		s.inflight[run] = c
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			c.err = s.sync(env, run, rec)
			s.mu.Lock()
			delete(s.inflight, run)
			s.mu.Unlock()
			close(c.done)
		}()
	}
	s.mu.Unlock()
	select {
	case <-c.done:
		return run, c.err
	case <-ctx.Done():
		return "", fmt.Errorf("wait for environment %s to sync: %w", env, ctx.Err())
	}
}

// localImage is the local image of an environment.
type localImage struct {
	id      string
	version int64 // its version label, else its creation time
	present bool
}

// localVersion inspects a local image; present is false when it is missing.
func (s *Syncer) localVersion(ctx context.Context, image string) (localImage, error) {
	ii, err := s.cli.ImageInspect(ctx, image)
	if err != nil {
		if err = translate(err); errors.Is(err, environment.ErrNotFound) {
			return localImage{}, nil
		}
		return localImage{}, fmt.Errorf("inspect image %s: %w", image, err)
	}
	li := localImage{id: ii.ID, present: true}
	if ii.Config != nil {
		if v, err := strconv.ParseInt(ii.Config.Labels[LabelVersion], 10, 64); err == nil {
			li.version = v
			return li, nil
		}
	}
	if t, err := time.Parse(time.RFC3339Nano, ii.Created); err == nil {
		li.version = t.Unix()
	}
	return li, nil
}

func (s *Syncer) sync(env, run string, rec Recorded) error {
	ctx, cancel := context.WithTimeout(s.life, maxLoadTime)
	defer cancel()
	s.refuseUnrecorded(env, rec)
	local, err := s.localVersion(ctx, run)
	if err != nil {
		return err
	}
	if rec.Version == 0 {
		if local.present {
			return nil
		}
		if ok, err := s.adoptUnrecorded(ctx, env, run); err != nil || ok {
			return err
		}
		return fmt.Errorf("environment %q: image %s is not on this runner and the cluster recorded no tarball of it (run 'hakuriver docker create-tar %s'): %w",
			env, run, env, environment.ErrNotFound)
	}
	s.mu.Lock()
	done := s.loaded[run]
	s.mu.Unlock()
	if local.present && (local.version == rec.Version || done == rec.Version) {
		return nil
	}
	if ok, err := s.adoptCommitted(ctx, env, run, rec); err != nil || ok {
		return err
	}
	tb := environment.Tarball{Env: env, Version: rec.Version, Path: filepath.Join(s.dir, environment.TarballName(env, rec.Version)), SHA256: rec.SHA256}
	if err := s.load(ctx, tb, rec.Size); err != nil {
		return err
	}
	if err := s.tagLoaded(ctx, env, run, rec); err != nil {
		return err
	}
	if local.present {
		now, err := s.localVersion(ctx, run)
		if err == nil && now.id != local.id {
			// The previous version is now untagged; drop it unless a
			// container still uses it.
			if _, err := s.cli.ImageRemove(ctx, local.id, image.RemoveOptions{PruneChildren: true}); err != nil {
				s.log.Debug("previous environment image kept", keyImage, local.id, keyErr, err)
			}
		}
	}
	s.mu.Lock()
	s.loaded[run] = rec.Version
	s.mu.Unlock()
	return nil
}

// refuseUnrecorded logs, once each, the tarballs of env newer than the
// recorded version: never loaded (written by someone other than create-tar,
// maybe with a version from the future, or saved by a create-tar whose
// record this task did not carry yet).
func (s *Syncer) refuseUnrecorded(env string, rec Recorded) {
	all, err := environment.ListTarballs(s.dir)
	if err != nil {
		s.log.Warn("list environment tarballs", keyErr, err)
		return
	}
	for _, tb := range all[env] {
		if tb.Version <= rec.Version {
			continue
		}
		s.mu.Lock()
		seen := s.refused[tb.Path]
		s.refused[tb.Path] = true
		s.mu.Unlock()
		if !seen {
			reason := "newer than the recorded version: not made by create-tar, or not recorded yet"
			if tb.Version > time.Now().Add(environment.MaxVersionSkew).Unix() {
				reason = "a version from the future"
			}
			s.log.Warn("refusing an environment tarball the cluster did not record", "reason", reason,
				keyEnv, env, keyTarball, tb.Path, keyVersion, tb.Version, "recorded_version", rec.Version)
		}
	}
}

// adoptCommitted tags the image create-tar committed on this engine (the
// host replica's own, labelled with this cluster and the recorded version)
// as run, saving a load; ok is false when there is none.
func (s *Syncer) adoptCommitted(ctx context.Context, env, run string, rec Recorded) (bool, error) {
	if rec.Cluster == "" {
		return false, nil
	}
	ii, err := s.cli.ImageInspect(ctx, environment.ImageName(env))
	if err != nil || ii.Config == nil || ii.Config.Labels[LabelCluster] != rec.Cluster ||
		ii.Config.Labels[LabelVersion] != strconv.FormatInt(rec.Version, 10) {
		return false, nil
	}
	if err := s.cli.ImageTag(ctx, ii.ID, run); err != nil {
		return false, fmt.Errorf("tag %s as %s: %w", environment.ImageName(env), run, translate(err))
	}
	return true, nil
}

// adoptUnrecorded serves an environment the cluster recorded no tarball
// of from an image an administrator put on this runner as environment.ImageName(env)
// (the original's way): it is tagged as run unless it carries another
// cluster's label. ok is false when there is none.
func (s *Syncer) adoptUnrecorded(ctx context.Context, env, run string) (bool, error) {
	if run == environment.ImageName(env) {
		return false, nil
	}
	ii, err := s.cli.ImageInspect(ctx, environment.ImageName(env))
	if err != nil {
		return false, nil
	}
	if ii.Config != nil && ii.Config.Labels[LabelCluster] != "" && run != environment.ScopedImageName(env, ii.Config.Labels[LabelCluster]) {
		return false, nil // another cluster's
	}
	if err := s.cli.ImageTag(ctx, ii.ID, run); err != nil {
		return false, fmt.Errorf("tag %s as %s: %w", environment.ImageName(env), run, translate(err))
	}
	return true, nil
}

// tagLoaded tags the image a verified tarball just loaded as run, after
// checking that the tag it carries names that image (another cluster's
// load of the same environment name on this engine may have moved it).
func (s *Syncer) tagLoaded(ctx context.Context, env, run string, rec Recorded) error {
	if run == environment.ImageName(env) {
		return nil
	}
	ii, err := s.cli.ImageInspect(ctx, environment.ImageName(env))
	if err != nil {
		return fmt.Errorf("tarball %s loaded but holds no image %s: %w", environment.TarballName(env, rec.Version), environment.ImageName(env), translate(err))
	}
	if ii.Config == nil || ii.Config.Labels[LabelVersion] != strconv.FormatInt(rec.Version, 10) ||
		ii.Config.Labels[LabelCluster] != "" && ii.Config.Labels[LabelCluster] != rec.Cluster {
		return fmt.Errorf("%w: image %s changed while loading version %d (another cluster on this engine loaded the same environment name); retry",
			environment.ErrConflict, environment.ImageName(env), rec.Version)
	}
	if err := s.cli.ImageTag(ctx, ii.ID, run); err != nil {
		return fmt.Errorf("tag %s as %s: %w", environment.ImageName(env), run, translate(err))
	}
	return nil
}

// load runs `docker load` of tb after checking its SHA-256 against
// tb.SHA256 (and its size against size, when known): the file is opened
// without following a symlink and hashed first, so that a mismatching one
// never reaches the engine; the load then reads the same open file through
// a reader that hashes again and withholds the file's last bytes until that
// hash matches too, so that a file changed in between fails the load.
func (s *Syncer) load(ctx context.Context, tb environment.Tarball, size int64) error {
	f, err := os.OpenFile(tb.Path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("open recorded tarball %s: %w", tb.Path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat tarball %s: %w", tb.Path, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: tarball %s is not a regular file", environment.ErrInvalid, tb.Path)
	}
	tb.Size = fi.Size()
	if size > 0 && tb.Size != size {
		s.log.Warn("refusing an environment tarball whose size differs from the recorded one", keyTarball, tb.Path, keyBytes, tb.Size, "recorded_bytes", size)
		return fmt.Errorf("%w: tarball %s: %d bytes, the cluster recorded %d", environment.ErrInvalid, tb.Path, tb.Size, size)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("hash tarball %s: %w", tb.Path, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != tb.SHA256 {
		s.log.Warn("refusing an environment tarball whose SHA-256 differs from the recorded one", keyTarball, tb.Path, "sha256", got, "recorded_sha256", tb.SHA256)
		return fmt.Errorf("%w: tarball %s: SHA-256 %s, the cluster recorded %s", environment.ErrInvalid, tb.Path, got, tb.SHA256)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("rewind tarball %s: %w", tb.Path, err)
	}
	s.loads.Add(1)
	start := time.Now()
	s.log.Info("loading environment tarball", keyEnv, tb.Env, keyTarball, tb.Path, keyVersion, tb.Version, keyBytes, tb.Size)
	pr := &progressReader{r: newVerifyingReader(f, tb.SHA256), every: 2 * time.Second, last: start, report: func(n int64) {
		s.log.Info("loading environment tarball", keyEnv, tb.Env, keyTarball, tb.Path,
			"bytes_read", n, keyBytes, tb.Size, "percent", percent(n, tb.Size))
	}}
	resp, err := s.cli.ImageLoad(ctx, pr, client.ImageLoadWithQuiet(true))
	if err != nil {
		return fmt.Errorf("load tarball %s: %w", tb.Path, translate(err))
	}
	defer resp.Body.Close()
	if err := drainJSONMessages(resp.Body, func(m jsonMessage) {
		if m.Stream != "" {
			s.log.Debug("docker load", keyTarball, tb.Path, "message", m.Stream)
		}
	}); err != nil {
		return fmt.Errorf("load tarball %s: %w", tb.Path, err)
	}
	s.log.Info("environment tarball loaded", keyEnv, tb.Env, keyTarball, tb.Path, keyVersion, tb.Version,
		keyTook, time.Since(start).Round(time.Millisecond))
	return nil
}

// verifyingReader passes r through while hashing it, always holding back
// the last holdBack bytes read; at r's end it hands them out only when the
// hash is want, and fails instead otherwise.
type verifyingReader struct {
	r     io.Reader
	h     hash.Hash
	want  string
	buf   []byte // read but not yet handed out
	chunk []byte // read buffer
	eof   bool
	err   error
}

// holdBack is more than a tar archive's closing blocks, so that a reader
// of the stream cannot complete the archive before the hash is checked.
const holdBack = 64 << 10

func newVerifyingReader(r io.Reader, want string) *verifyingReader {
	return &verifyingReader{r: r, h: sha256.New(), want: want}
}

// Read implements io.Reader.
func (v *verifyingReader) Read(p []byte) (int, error) {
	for !v.eof && len(v.buf) <= holdBack {
		if v.chunk == nil {
			v.chunk = make([]byte, 256<<10)
		}
		n, err := v.r.Read(v.chunk)
		v.h.Write(v.chunk[:n]) //nolint:errcheck // hash writes never fail
		v.buf = append(v.buf, v.chunk[:n]...)
		if errors.Is(err, io.EOF) {
			v.eof = true
			if got := hex.EncodeToString(v.h.Sum(nil)); got != v.want {
				v.err = fmt.Errorf("%w: tarball changed while loading: SHA-256 %s, recorded %s", environment.ErrInvalid, got, v.want)
			}
		} else if err != nil {
			return 0, err
		}
	}
	if v.err != nil {
		return 0, v.err
	}
	avail := len(v.buf)
	if !v.eof {
		avail -= holdBack
	}
	if avail == 0 && v.eof {
		return 0, io.EOF
	}
	n := copy(p, v.buf[:avail])
	v.buf = v.buf[n:]
	return n, nil
}

func percent(n, total int64) int64 {
	if total <= 0 {
		return 0
	}
	return n * 100 / total
}

// progressReader counts bytes read and reports them at most every `every`.
type progressReader struct {
	r      io.Reader
	n      int64
	last   time.Time
	every  time.Duration
	report func(int64)
}

// Read implements io.Reader.
func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if now := time.Now(); now.Sub(p.last) >= p.every {
		p.last = now
		p.report(p.n)
	}
	return n, err
}
