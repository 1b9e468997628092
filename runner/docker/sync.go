package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
)

// maxLoadTime bounds one `docker load`.
const maxLoadTime = 30 * time.Minute

// Syncer brings a runner's environment images up to date with the newest
// tarball in shared storage. Concurrent Syncs of one environment share a
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
	// loaded is the newest tarball version loaded per environment, so that
	// a tarball whose image is labelled older than its file name is not
	// loaded again before every task.
	loaded map[string]int64
	loads  atomic.Int64 // docker loads performed (tests)
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
		life: life, cancel: cancel, inflight: map[string]*syncCall{}, loaded: map[string]int64{},
	}
}

// Close cancels loads in progress and waits for them.
func (s *Syncer) Close() {
	s.cancel()
	s.wg.Wait()
}

// Sync makes image ready to run. For hakuriver/<env>:base it compares the
// local image's version label with the newest <env>-<version>.tar and loads
// that tarball when the image is older or missing; without any tarball a
// local image is used as it is. Any other image must already be local. A
// tarball that does not load gives an error naming its file.
func (s *Syncer) Sync(ctx context.Context, image string) error {
	env := envOfImage(image)
	if env == "" {
		if _, err := s.cli.ImageInspect(ctx, image); err != nil {
			return fmt.Errorf("image %s: %w", image, translate(err))
		}
		return nil
	}
	s.mu.Lock()
	c := s.inflight[env]
	if c == nil {
		c = &syncCall{done: make(chan struct{})}
		s.inflight[env] = c
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			c.err = s.sync(env, image)
			s.mu.Lock()
			delete(s.inflight, env)
			s.mu.Unlock()
			close(c.done)
		}()
	}
	s.mu.Unlock()
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return fmt.Errorf("wait for environment %s to sync: %w", env, ctx.Err())
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
		if err = translate(err); errors.Is(err, ErrNotFound) {
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

func (s *Syncer) sync(env, img string) error {
	ctx, cancel := context.WithTimeout(s.life, maxLoadTime)
	defer cancel()
	tb, have, err := newestTarball(s.dir, env)
	if err != nil {
		return err
	}
	local, err := s.localVersion(ctx, img)
	if err != nil {
		return err
	}
	if !have {
		if local.present {
			return nil
		}
		return fmt.Errorf("environment %q: image %s is not on this runner and %s holds no %s-*.tar: %w",
			env, img, s.dir, env, ErrNotFound)
	}
	s.mu.Lock()
	done := s.loaded[env]
	s.mu.Unlock()
	if local.present && (local.version >= tb.Version || done >= tb.Version) {
		return nil
	}
	if err := s.load(ctx, tb); err != nil {
		return err
	}
	now, err := s.localVersion(ctx, img)
	if err != nil {
		return err
	}
	if !now.present {
		return fmt.Errorf("tarball %s loaded but holds no image %s", tb.Path, img)
	}
	if now.version < tb.Version {
		s.log.Warn("loaded tarball is older than its file name says", keyTarball, tb.Path, "image_version", now.version)
	}
	if local.present && local.id != now.id {
		// The previous version is now untagged; drop it unless a container
		// still uses it.
		if _, err := s.cli.ImageRemove(ctx, local.id, image.RemoveOptions{PruneChildren: true}); err != nil {
			s.log.Debug("previous environment image kept", keyImage, local.id, keyErr, err)
		}
	}
	s.mu.Lock()
	s.loaded[env] = tb.Version
	s.mu.Unlock()
	return nil
}

// load runs `docker load` of tb, logging progress.
func (s *Syncer) load(ctx context.Context, tb Tarball) error {
	f, err := os.Open(tb.Path)
	if err != nil {
		return fmt.Errorf("open tarball %s: %w", tb.Path, err)
	}
	defer f.Close()
	s.loads.Add(1)
	start := time.Now()
	s.log.Info("loading environment tarball", keyEnv, tb.Env, keyTarball, tb.Path, keyVersion, tb.Version, keyBytes, tb.Size)
	pr := &progressReader{r: f, every: 2 * time.Second, last: start, report: func(n int64) {
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
