package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/ops/environment"
)

// EnvProxiedHeader marks an environment request one replica proxied to the
// replica holding the environment, which serves it without looking further.
const EnvProxiedHeader = "X-Hakuriver-Env-Proxied"

// local returns this replica's environments confined to this cluster's
// (EnvironmentEngine.Scoped: labelled with the cluster's ID, or
// unlabelled but recorded here by the FSM), or a 503 when Docker is
// disabled here or the cluster has no ID yet.
func (e *EnvAPI) local(ctx context.Context) (EnvironmentScope, error) {
	if e.d.Engine == nil {
		return nil, &httpError{status: http.StatusServiceUnavailable, msg: "Docker is not enabled on replica " + e.cfg.NodeID}
	}
	id, err := e.clusterID(ctx)
	if err != nil {
		return nil, err
	}
	return e.d.Engine.Scoped(id, func(name string) bool {
		rec, ok := e.d.State.Environment(name)
		return ok && rec.Replica == e.cfg.NodeID
	}), nil
}

// clusterID returns the cluster's ID, waiting up to LeaderWait for a
// young cluster's first leader to choose it; a 503 when it does not.
func (e *EnvAPI) clusterID(ctx context.Context) (string, error) {
	deadline := time.Now().Add(e.cfg.LeaderWait)
	for {
		if id := e.d.State.ClusterID(); id != "" {
			return id, nil
		}
		if time.Now().After(deadline) {
			return "", &httpError{status: http.StatusServiceUnavailable, msg: "the cluster has no ID yet (its first leader chooses one); retry in a moment"}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("wait for the cluster ID: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// dockerError maps an environment error (ops/environment sentinels) to its
// HTTP status.
func (e *EnvAPI) dockerError(err error) error {
	switch {
	case errors.Is(err, environment.ErrUnavailable):
		return &httpError{status: http.StatusServiceUnavailable, msg: fmt.Sprintf("Docker is unreachable on replica %s: %v", e.cfg.NodeID, err)}
	case errors.Is(err, environment.ErrNotFound):
		return &httpError{status: http.StatusNotFound, msg: err.Error()}
	case errors.Is(err, environment.ErrInvalid):
		return &httpError{status: http.StatusBadRequest, msg: err.Error()}
	case errors.Is(err, environment.ErrConflict):
		return &httpError{status: http.StatusConflict, msg: err.Error()}
	}
	return err
}

// envName reads and validates the {name} path parameter.
func envName(r *http.Request) (string, error) {
	name := chi.URLParam(r, "name")
	if err := environment.CheckName(name); err != nil {
		return "", badRequest("%s", environment.Reason(err, environment.ErrInvalid))
	}
	return name, nil
}

// servedHere reads the {name} parameter and returns it with ok true when
// this replica serves r; ok is false when r was answered: a bad name, or
// proxied to the replica holding the environment.
func (e *EnvAPI) servedHere(w http.ResponseWriter, r *http.Request) (name string, ok bool) {
	name, err := envName(r)
	if err != nil {
		writeError(w, err)
		return "", false
	}
	return name, !e.proxyToOwner(w, r, name)
}

// proxyToOwner serves r by proxying it to the replica holding environment
// name and returns true, or returns false when this replica serves it: the
// environment is recorded here, is not recorded at all, or r was proxied
// already.
func (e *EnvAPI) proxyToOwner(w http.ResponseWriter, r *http.Request, name string) bool {
	if r.Header.Get(EnvProxiedHeader) != "" {
		return false
	}
	rec, ok := e.d.State.Environment(name)
	if !ok || rec.Replica == e.cfg.NodeID {
		return false
	}
	base := e.d.Replicas.ReplicaAPI(rec.Replica)
	if base == "" {
		writeError(w, &httpError{status: http.StatusServiceUnavailable,
			msg: fmt.Sprintf("environment %s lives on replica %s, which is unreachable", name, rec.Replica)})
		return true
	}
	target, err := url.Parse(base)
	if err != nil {
		writeError(w, fmt.Errorf("replica %s API address %q: %w", rec.Replica, base, err))
		return true
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host // same-origin checks of the WebSocket
			pr.Out.Header.Set(EnvProxiedHeader, e.cfg.NodeID)
		},
		Transport:     e.cfg.ProxyTransport,
		FlushInterval: -1, // create_tar progress and the terminal stream
		ModifyResponse: func(resp *http.Response) error {
			resp.Header.Del(api.LeaderHeader) // this replica set its own
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			writeError(w, &httpError{status: http.StatusServiceUnavailable,
				msg: fmt.Sprintf("environment %s lives on replica %s, which did not answer: %v", name, rec.Replica, err)})
		},
	}
	rp.ServeHTTP(w, r)
	return true
}

// record commits c through the leader: proposed here when this replica
// leads, else POSTed to the leader's internal endpoint; retried while no
// leader is known, up to LeaderWait.
func (e *EnvAPI) record(ctx context.Context, c *fsm.SetEnvironment) error {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.LeaderWait+10*time.Second)
	defer cancel()
	deadline := time.Now().Add(e.cfg.LeaderWait)
	for {
		var err error
		if e.d.Leader.IsLeader() {
			if _, err = e.d.Proposer.Propose(ctx, c); err == nil || !errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrNoLeader) {
				return err
			}
		} else if id, base := e.d.Leader.Leader(); id != "" && id != e.cfg.NodeID && base != "" {
			err = e.d.Calls.RecordEnvironment(ctx, base, c)
			if err == nil {
				return nil
			}
			var ae *api.APIError
			if errors.As(err, &ae) && ae.StatusCode != http.StatusServiceUnavailable {
				return &httpError{status: ae.StatusCode, msg: ae.Message}
			}
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = errors.New("no leader known")
			}
			return fmt.Errorf("%w: record environment %s: %v", ErrNoLeader, c.Name, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("record environment %s: %w", c.Name, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// SetEnvironment commits a SetEnvironment on the leader (internal).
func (e *EnvAPI) SetEnvironment(w http.ResponseWriter, r *http.Request) {
	var c fsm.SetEnvironment
	if err := DecodeJSON(r, &c); err != nil {
		writeError(w, err)
		return
	}
	// Refuse here what the FSM would refuse: a bad record never reaches
	// the log (the FSM checks again, against the state it applies to).
	env, exists := e.d.State.Environment(c.Name)
	tb, hasTarball := e.d.State.Tarball(c.Name)
	if err := c.Check(env, exists, tb, hasTarball); err != nil {
		writeError(w, err)
		return
	}
	ctx, cancel := ApplyContext(r)
	defer cancel()
	v, err := e.d.Proposer.Propose(ctx, &c)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// List lists the environment containers of every replica that holds one,
// and of this one. ?local=1 lists only this replica's Docker.
func (e *EnvAPI) List(w http.ResponseWriter, r *http.Request) {
	localOnly := r.URL.Query().Get("local") == "1" || r.Header.Get(EnvProxiedHeader) != ""
	owner := map[string]string{} // environment → replica, from the FSM
	others := map[string]bool{}  // replicas other than this one holding some
	for _, rec := range e.d.State.Environments() {
		owner[rec.Name] = rec.Replica
		if rec.Replica != e.cfg.NodeID {
			others[rec.Replica] = true
		}
	}
	out := []api.DockerContainer{}
	var localErr error
	if m, err := e.local(r.Context()); err != nil {
		localErr = err
	} else if list, err := m.Environments(r.Context()); err != nil {
		localErr = e.dockerError(err)
	} else {
		for _, c := range list {
			if o, ok := owner[c.Name]; ok && o != e.cfg.NodeID && !localOnly {
				continue // recorded elsewhere: that replica's answer counts
			}
			out = append(out, api.DockerContainer{ID: c.ID, Name: c.Name, Image: c.Image, Status: c.Status, State: c.State, Replica: e.cfg.NodeID})
		}
	}
	if localOnly || len(others) == 0 {
		if localErr != nil {
			writeError(w, localErr)
			return
		}
		writeJSON(w, http.StatusOK, out)
		return
	}
	out = append(out, e.remoteEnvs(r.Context(), others, owner)...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	writeJSON(w, http.StatusOK, out)
}

// remoteEnvs asks each replica in others for its environments (in
// parallel). The environments of a replica that does not answer are listed
// with status "unreachable".
func (e *EnvAPI) remoteEnvs(ctx context.Context, others map[string]bool, owner map[string]string) []api.DockerContainer {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var mu sync.Mutex
	var out []api.DockerContainer
	var wg sync.WaitGroup
	for id := range others {
		wg.Add(1)
		go func() {
			defer wg.Done()
			list, err := e.replicaEnvs(ctx, id)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				e.log.Debug("list environments of another replica", "replica", id, "err", err)
				for name, o := range owner {
					if o == id {
						out = append(out, api.DockerContainer{Name: name, Status: "unreachable: " + err.Error(), State: "unknown", Replica: id})
					}
				}
				return
			}
			for _, c := range list {
				if o, ok := owner[c.Name]; !ok || o == id {
					c.Replica = id
					out = append(out, c)
				}
			}
		}()
	}
	wg.Wait()
	return out
}

// replicaEnvs lists replica id's own environments.
func (e *EnvAPI) replicaEnvs(ctx context.Context, id string) ([]api.DockerContainer, error) {
	base := e.d.Replicas.ReplicaAPI(id)
	if base == "" {
		return nil, fmt.Errorf("replica %s is unreachable", id)
	}
	list, err := e.d.Calls.Environments(ctx, base)
	if err != nil {
		return nil, fmt.Errorf("replica %s: %w", id, err)
	}
	return list, nil
}

// Create creates an environment container on this replica (or on the
// replica that already holds that name) and records where it lives.
func (e *EnvAPI) Create(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		writeError(w, badRequest("read request body: %v", err))
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	var req api.CreateContainerRequest
	if err := DecodeJSON(r, &req); err != nil {
		writeError(w, err)
		return
	}
	if strings.TrimSpace(req.ImageName) == "" || req.ContainerName == "" {
		writeError(w, badRequest("image_name and container_name: both are required"))
		return
	}
	if err := environment.CheckName(req.ContainerName); err != nil {
		writeError(w, badRequest("container_name: %s", environment.Reason(err, environment.ErrInvalid)))
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	if e.proxyToOwner(w, r, req.ContainerName) {
		return
	}
	m, err := e.local(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	created, err := m.CreateEnvironment(r.Context(), req.ImageName, req.ContainerName)
	if err != nil {
		writeError(w, e.dockerError(err))
		return
	}
	if err := e.record(r.Context(), &fsm.SetEnvironment{Name: req.ContainerName, Replica: e.cfg.NodeID}); err != nil {
		if created {
			// Nothing half-done: the cluster does not know it, so drop it.
			if derr := m.DeleteEnvironment(context.WithoutCancel(r.Context()), req.ContainerName); derr != nil {
				e.log.Warn("remove an environment that could not be recorded", "environment", req.ContainerName, "err", derr)
			}
		}
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, api.DockerMessage{
		Message: fmt.Sprintf("Container '%s' created or already exists.", req.ContainerName), Replica: e.cfg.NodeID})
}

// Op starts, stops or deletes an environment container (op "start",
// "stop" or "delete"). Deleting one whose replica is gone for good:
// ?force=1 forgets it.
func (e *EnvAPI) Op(op string) http.HandlerFunc {
	done := map[string]string{"start": "started", "stop": "stopped", "delete": "deleted"}[op]
	return func(w http.ResponseWriter, r *http.Request) {
		name, err := envName(r)
		if err != nil {
			writeError(w, err)
			return
		}
		if op == "delete" && r.URL.Query().Get("force") == "1" {
			if rec, ok := e.d.State.Environment(name); ok && rec.Replica != e.cfg.NodeID && e.d.Replicas.ReplicaAPI(rec.Replica) == "" {
				if err := e.record(r.Context(), &fsm.SetEnvironment{Name: name, Deleted: true}); err != nil {
					writeError(w, err)
					return
				}
				writeJSON(w, http.StatusOK, api.DockerMessage{Message: fmt.Sprintf("Environment '%s' forgotten (replica %s unreachable).", name, rec.Replica)})
				return
			}
		}
		if e.proxyToOwner(w, r, name) {
			return
		}
		m, err := e.local(r.Context())
		if err != nil {
			writeError(w, err)
			return
		}
		switch op {
		case "start":
			err = m.StartEnvironment(r.Context(), name)
		case "stop":
			err = m.StopEnvironment(r.Context(), name)
		case "delete":
			err = m.DeleteEnvironment(r.Context(), name)
			if rec, ok := e.d.State.Environment(name); ok && rec.Replica == e.cfg.NodeID && (err == nil || errors.Is(err, environment.ErrNotFound)) {
				err = e.record(r.Context(), &fsm.SetEnvironment{Name: name, Deleted: true})
			}
		}
		if err != nil {
			writeError(w, e.dockerError(err))
			return
		}
		writeJSON(w, http.StatusOK, api.DockerMessage{Message: fmt.Sprintf("Container '%s' %s.", name, done), Replica: e.cfg.NodeID})
	}
}

// CreateTar commits and saves an environment. A client accepting
// application/x-ndjson gets progress lines and then the result (or the
// error) as the last line; others get the original's one JSON answer.
func (e *EnvAPI) CreateTar(w http.ResponseWriter, r *http.Request) {
	name, ok := e.servedHere(w, r)
	if !ok {
		return
	}
	m, err := e.local(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	result := func(tb environment.Tarball) *api.CreateTarResponse {
		return &api.CreateTarResponse{Message: "Container tarball created/refreshed successfully.", TarballPath: tb.Path,
			Timestamp: tb.Version, Size: tb.Size, Replica: e.cfg.NodeID}
	}
	if !strings.Contains(r.Header.Get("Accept"), api.NDJSONType) {
		tb, err := e.createTar(r.Context(), m, name, nil)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, result(tb))
		return
	}
	w.Header().Set("Content-Type", api.NDJSONType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	send := func(p api.TarProgress) {
		enc.Encode(p) //nolint:errcheck // the client went away; the work goes on to its end
		rc.Flush()    //nolint:errcheck // same
	}
	tb, err := e.createTar(r.Context(), m, name, func(p environment.Progress) {
		send(api.TarProgress{Type: "progress", Stage: p.Stage, Bytes: p.Bytes, Total: p.Total})
	})
	if err != nil {
		send(api.TarProgress{Type: "error", Error: err.Error(), Status: StatusOf(err)})
		return
	}
	send(api.TarProgress{Type: "result", Result: result(tb)})
}

// createTar saves a new tarball of environment name and records its
// version and SHA-256 in the FSM (the only tarball runners will load). A
// tarball the cluster could not record is removed again.
func (e *EnvAPI) createTar(ctx context.Context, m EnvironmentScope, name string, progress func(environment.Progress)) (environment.Tarball, error) {
	prev, _ := e.d.State.Tarball(name)
	tb, err := m.CreateTarball(ctx, name, prev.Version, progress)
	if err != nil {
		return tb, e.dockerError(err)
	}
	rec := &fsm.SetEnvironment{Name: name, Replica: e.cfg.NodeID,
		Tarball: &fsm.TarballRecord{Version: tb.Version, SHA256: tb.SHA256, Size: tb.Size}}
	if err := e.record(context.WithoutCancel(ctx), rec); err != nil {
		if rerr := os.Remove(tb.Path); rerr != nil {
			e.log.Warn("remove a tarball that could not be recorded", "tarball", tb.Path, "err", rerr)
		}
		return tb, fmt.Errorf("record tarball %s: %w", filepath.Base(tb.Path), err)
	}
	e.log.Info("environment tarball recorded", "environment", name, "version", tb.Version, "sha256", tb.SHA256)
	return tb, nil
}

// Tarballs lists the tarballs in shared storage (the original's
// GET /docker/list shape, plus sizes).
func (e *EnvAPI) Tarballs(w http.ResponseWriter, r *http.Request) {
	all, err := environment.ListTarballs(e.cfg.TarballDir)
	if err != nil {
		writeError(w, err)
		return
	}
	out := make(map[string]api.TarballSet, len(all))
	future := time.Now().Add(environment.MaxVersionSkew).Unix()
	for env, list := range all {
		rec, recorded := e.d.State.Tarball(env)
		var set api.TarballSet
		for _, tb := range list {
			if tb.Version > future {
				continue // not made by create-tar: never loaded, not listed
			}
			v := api.TarballVersion{Timestamp: tb.Version, Tarball: filepath.Base(tb.Path), Size: tb.Size}
			if recorded && tb.Version == rec.Version {
				v.SHA256 = rec.SHA256
			}
			if len(set.AllVersions) == 0 {
				set.LatestTimestamp, set.LatestTarball, set.LatestSize = v.Timestamp, v.Tarball, v.Size
			}
			set.AllVersions = append(set.AllVersions, v)
		}
		if len(set.AllVersions) > 0 {
			out[env] = set
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// CheckEnvironment is the submit-time check of a task's container_name:
// nil for the native marker (environment.Native), for an environment whose
// container or tarball state records (its tarball may come later);
// otherwise a 400 naming it, which says so when tarballs lie in tarballDir
// that the cluster did not record (runners never load those).
func CheckEnvironment(state EnvReader, tarballDir, name string) error {
	if environment.IsNative(name) {
		return nil
	}
	if err := environment.CheckName(name); err != nil {
		return badRequest("container_name %q: unknown environment (%s)", name, environment.Reason(err, environment.ErrInvalid))
	}
	if _, ok := state.Environment(name); ok {
		return nil
	}
	if _, ok := state.Tarball(name); ok {
		return nil
	}
	all, err := environment.ListTarballs(tarballDir)
	if err != nil {
		return err
	}
	if len(all[name]) > 0 {
		return badRequest("container_name %q: %s holds %s, but this cluster recorded no tarball of it (runners load only tarballs create-tar recorded): run 'hakuriver docker create-tar %s' on a replica holding the environment",
			name, tarballDir, filepath.Base(all[name][0].Path), name)
	}
	return badRequest("container_name %q: unknown environment: no tarball %s-*.tar in %s (create it with 'hakuriver docker create-container' and 'hakuriver docker create-tar')", name, name, tarballDir)
}
