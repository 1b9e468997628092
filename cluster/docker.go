package cluster

// Environments (the original's /docker router). An environment container
// lives in the Docker Engine of the replica that created it; the FSM records
// which (fsm.SetEnvironment). Any replica answers: an operation on an
// environment that lives elsewhere is proxied to that replica's API (found
// through gossip), WebSocket terminal included. Tarballs live in shared
// storage, so any replica lists them itself.

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
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"
	"github.com/gorilla/websocket"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/ops/environment"
)

// envProxiedHeader marks an environment request one replica proxied to the
// replica holding the environment, which serves it without looking further.
const envProxiedHeader = "X-Hakuriver-Env-Proxied"

// dockerRoutes serves the environment API under /docker.
func (h *Host) dockerRoutes(r chi.Router) {
	r.Route("/docker", func(r chi.Router) {
		r.Get("/host/containers", h.handleEnvList)
		r.Post("/host/create", h.handleEnvCreate)
		r.Post("/host/start/{name}", h.handleEnvOp("start"))
		r.Post("/host/stop/{name}", h.handleEnvOp("stop"))
		r.Post("/host/delete/{name}", h.handleEnvOp("delete"))
		r.Get("/host/containers/{name}/terminal", h.handleEnvTerminal)
		r.Post("/create_tar/{name}", h.handleCreateTar)
		r.Get("/list", h.handleTarballs)
		r.Post("/internal/environments", h.requireToken(h.onLeader(h.handleSetEnvironment)))
	})
}

// envManager returns this replica's environments confined to this
// cluster's (Environments.Scoped: labelled with the cluster's ID, or
// unlabelled but recorded here by the FSM), or a 503 when Docker is
// disabled here or the cluster has no ID yet.
func (h *Host) envManager(ctx context.Context) (EnvironmentScope, error) {
	if h.cfg.Docker == nil {
		return nil, &httpError{status: http.StatusServiceUnavailable, msg: "Docker is not enabled on replica " + h.cfg.NodeID}
	}
	id, err := h.clusterID(ctx)
	if err != nil {
		return nil, err
	}
	return h.cfg.Docker.Scoped(id, func(name string) bool {
		e, ok := h.machine.Environment(name)
		return ok && e.Replica == h.cfg.NodeID
	}), nil
}

// clusterID returns the cluster's ID, waiting up to LeaderWait for a
// young cluster's first leader to choose it; a 503 when it does not.
func (h *Host) clusterID(ctx context.Context) (string, error) {
	deadline := time.Now().Add(h.cfg.LeaderWait)
	for {
		if id := h.machine.ClusterID(); id != "" {
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
func (h *Host) dockerError(err error) error {
	switch {
	case errors.Is(err, environment.ErrUnavailable):
		return &httpError{status: http.StatusServiceUnavailable, msg: fmt.Sprintf("Docker is unreachable on replica %s: %v", h.cfg.NodeID, err)}
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

// replicaAPI returns the API base URL of replica id ("" when gossip does
// not see it alive).
func (h *Host) replicaAPI(id string) string {
	if id == h.cfg.NodeID {
		return h.apiURL
	}
	if m, ok := h.pool.Member(id); ok && m.Alive {
		return m.Meta.API
	}
	return ""
}

// proxyToOwner serves r by proxying it to the replica holding environment
// name and returns true, or returns false when this replica serves it: the
// environment is recorded here, is not recorded at all, or r was proxied
// already.
func (h *Host) proxyToOwner(w http.ResponseWriter, r *http.Request, name string) bool {
	if r.Header.Get(envProxiedHeader) != "" {
		return false
	}
	e, ok := h.machine.Environment(name)
	if !ok || e.Replica == h.cfg.NodeID {
		return false
	}
	base := h.replicaAPI(e.Replica)
	if base == "" {
		writeError(w, &httpError{status: http.StatusServiceUnavailable,
			msg: fmt.Sprintf("environment %s lives on replica %s, which is unreachable", name, e.Replica)})
		return true
	}
	target, err := url.Parse(base)
	if err != nil {
		writeError(w, fmt.Errorf("replica %s API address %q: %w", e.Replica, base, err))
		return true
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host // same-origin checks of the WebSocket
			pr.Out.Header.Set(envProxiedHeader, h.cfg.NodeID)
		},
		Transport:     h.fwd.Transport,
		FlushInterval: -1, // create_tar progress and the terminal stream
		ModifyResponse: func(resp *http.Response) error {
			resp.Header.Del(api.LeaderHeader) // this replica set its own
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			writeError(w, &httpError{status: http.StatusServiceUnavailable,
				msg: fmt.Sprintf("environment %s lives on replica %s, which did not answer: %v", name, e.Replica, err)})
		},
	}
	rp.ServeHTTP(w, r)
	return true
}

// recordEnv commits c through the leader: applied here when this replica
// leads, else POSTed to the leader's internal endpoint; retried while no
// leader is known, up to LeaderWait.
func (h *Host) recordEnv(ctx context.Context, c *fsm.SetEnvironment) error {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.LeaderWait+10*time.Second)
	defer cancel()
	deadline := time.Now().Add(h.cfg.LeaderWait)
	for {
		var err error
		if h.IsLeader() {
			if _, err = h.apply(ctx, c); err == nil || !errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrNoLeader) {
				return err
			}
		} else if id, base := h.leaderInfo(); id != "" && id != h.cfg.NodeID && base != "" {
			err = h.replicas.RecordEnvironment(ctx, base, c)
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

// handleSetEnvironment commits a SetEnvironment on the leader (internal).
func (h *Host) handleSetEnvironment(w http.ResponseWriter, r *http.Request) {
	var c fsm.SetEnvironment
	if err := decodeJSON(r, &c); err != nil {
		writeError(w, err)
		return
	}
	ctx, cancel := h.applyCtx(r)
	defer cancel()
	v, err := h.apply(ctx, &c)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// handleEnvList lists the environment containers of every replica that
// holds one, and of this one. ?local=1 lists only this replica's Docker.
func (h *Host) handleEnvList(w http.ResponseWriter, r *http.Request) {
	localOnly := r.URL.Query().Get("local") == "1" || r.Header.Get(envProxiedHeader) != ""
	owner := map[string]string{} // environment → replica, from the FSM
	others := map[string]bool{}  // replicas other than this one holding some
	for _, e := range h.machine.Environments() {
		owner[e.Name] = e.Replica
		if e.Replica != h.cfg.NodeID {
			others[e.Replica] = true
		}
	}
	out := []api.DockerContainer{}
	var localErr error
	if m, err := h.envManager(r.Context()); err != nil {
		localErr = err
	} else if list, err := m.Environments(r.Context()); err != nil {
		localErr = h.dockerError(err)
	} else {
		for _, c := range list {
			if o, ok := owner[c.Name]; ok && o != h.cfg.NodeID && !localOnly {
				continue // recorded elsewhere: that replica's answer counts
			}
			out = append(out, api.DockerContainer{ID: c.ID, Name: c.Name, Image: c.Image, Status: c.Status, State: c.State, Replica: h.cfg.NodeID})
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
	out = append(out, h.remoteEnvs(r.Context(), others, owner)...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	writeJSON(w, http.StatusOK, out)
}

// remoteEnvs asks each replica in others for its environments (in
// parallel). The environments of a replica that does not answer are listed
// with status "unreachable".
func (h *Host) remoteEnvs(ctx context.Context, others map[string]bool, owner map[string]string) []api.DockerContainer {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var mu sync.Mutex
	var out []api.DockerContainer
	var wg sync.WaitGroup
	for id := range others {
		wg.Add(1)
		go func() {
			defer wg.Done()
			list, err := h.replicaEnvs(ctx, id)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				h.log.Debug("list environments of another replica", "replica", id, "err", err)
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
func (h *Host) replicaEnvs(ctx context.Context, id string) ([]api.DockerContainer, error) {
	base := h.replicaAPI(id)
	if base == "" {
		return nil, fmt.Errorf("replica %s is unreachable", id)
	}
	list, err := h.replicas.Environments(ctx, base)
	if err != nil {
		return nil, fmt.Errorf("replica %s: %w", id, err)
	}
	return list, nil
}

// handleEnvCreate creates an environment container on this replica (or on
// the replica that already holds that name) and records where it lives.
func (h *Host) handleEnvCreate(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		writeError(w, badRequest("read request body: %v", err))
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	var req api.CreateContainerRequest
	if err := decodeJSON(r, &req); err != nil {
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
	if h.proxyToOwner(w, r, req.ContainerName) {
		return
	}
	m, err := h.envManager(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	created, err := m.CreateEnvironment(r.Context(), req.ImageName, req.ContainerName)
	if err != nil {
		writeError(w, h.dockerError(err))
		return
	}
	if err := h.recordEnv(r.Context(), &fsm.SetEnvironment{Name: req.ContainerName, Replica: h.cfg.NodeID}); err != nil {
		if created {
			// Nothing half-done: the cluster does not know it, so drop it.
			if derr := m.DeleteEnvironment(context.WithoutCancel(r.Context()), req.ContainerName); derr != nil {
				h.log.Warn("remove an environment that could not be recorded", "environment", req.ContainerName, "err", derr)
			}
		}
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, api.DockerMessage{
		Message: fmt.Sprintf("Container '%s' created or already exists.", req.ContainerName), Replica: h.cfg.NodeID})
}

// handleEnvOp starts, stops or deletes an environment container.
// Deleting one whose replica is gone for good: ?force=1 forgets it.
func (h *Host) handleEnvOp(op string) http.HandlerFunc {
	done := map[string]string{"start": "started", "stop": "stopped", "delete": "deleted"}[op]
	return func(w http.ResponseWriter, r *http.Request) {
		name, err := envName(r)
		if err != nil {
			writeError(w, err)
			return
		}
		if op == "delete" && r.URL.Query().Get("force") == "1" {
			if e, ok := h.machine.Environment(name); ok && e.Replica != h.cfg.NodeID && h.replicaAPI(e.Replica) == "" {
				if err := h.recordEnv(r.Context(), &fsm.SetEnvironment{Name: name, Deleted: true}); err != nil {
					writeError(w, err)
					return
				}
				writeJSON(w, http.StatusOK, api.DockerMessage{Message: fmt.Sprintf("Environment '%s' forgotten (replica %s unreachable).", name, e.Replica)})
				return
			}
		}
		if h.proxyToOwner(w, r, name) {
			return
		}
		m, err := h.envManager(r.Context())
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
			if e, ok := h.machine.Environment(name); ok && e.Replica == h.cfg.NodeID && (err == nil || errors.Is(err, environment.ErrNotFound)) {
				err = h.recordEnv(r.Context(), &fsm.SetEnvironment{Name: name, Deleted: true})
			}
		}
		if err != nil {
			writeError(w, h.dockerError(err))
			return
		}
		writeJSON(w, http.StatusOK, api.DockerMessage{Message: fmt.Sprintf("Container '%s' %s.", name, done), Replica: h.cfg.NodeID})
	}
}

// handleCreateTar commits and saves an environment. A client accepting
// application/x-ndjson gets progress lines and then the result (or the
// error) as the last line; others get the original's one JSON answer.
func (h *Host) handleCreateTar(w http.ResponseWriter, r *http.Request) {
	name, err := envName(r)
	if err != nil {
		writeError(w, err)
		return
	}
	if h.proxyToOwner(w, r, name) {
		return
	}
	m, err := h.envManager(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	result := func(tb environment.Tarball) *api.CreateTarResponse {
		return &api.CreateTarResponse{Message: "Container tarball created/refreshed successfully.", TarballPath: tb.Path,
			Timestamp: tb.Version, Size: tb.Size, Replica: h.cfg.NodeID}
	}
	if !strings.Contains(r.Header.Get("Accept"), api.NDJSONType) {
		tb, err := h.createTar(r.Context(), m, name, nil)
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
	tb, err := h.createTar(r.Context(), m, name, func(p environment.Progress) {
		send(api.TarProgress{Type: "progress", Stage: p.Stage, Bytes: p.Bytes, Total: p.Total})
	})
	if err != nil {
		send(api.TarProgress{Type: "error", Error: err.Error(), Status: statusOf(err)})
		return
	}
	send(api.TarProgress{Type: "result", Result: result(tb)})
}

// createTar saves a new tarball of environment name and records its
// version and SHA-256 in the FSM (the only tarball runners will load). A
// tarball the cluster could not record is removed again.
func (h *Host) createTar(ctx context.Context, m EnvironmentScope, name string, progress func(environment.Progress)) (environment.Tarball, error) {
	prev, _ := h.machine.Tarball(name)
	tb, err := m.CreateTarball(ctx, name, prev.Version, progress)
	if err != nil {
		return tb, h.dockerError(err)
	}
	rec := &fsm.SetEnvironment{Name: name, Replica: h.cfg.NodeID,
		Tarball: &fsm.TarballRecord{Version: tb.Version, SHA256: tb.SHA256, Size: tb.Size}}
	if err := h.recordEnv(context.WithoutCancel(ctx), rec); err != nil {
		if rerr := os.Remove(tb.Path); rerr != nil {
			h.log.Warn("remove a tarball that could not be recorded", "tarball", tb.Path, "err", rerr)
		}
		return tb, fmt.Errorf("record tarball %s: %w", filepath.Base(tb.Path), err)
	}
	h.log.Info("environment tarball recorded", "environment", name, "version", tb.Version, "sha256", tb.SHA256)
	return tb, nil
}

// handleTarballs lists the tarballs in shared storage (the original's
// GET /docker/list shape, plus sizes).
func (h *Host) handleTarballs(w http.ResponseWriter, r *http.Request) {
	all, err := environment.ListTarballs(filepath.Join(h.cfg.SharedDir, h.cfg.ContainerDir))
	if err != nil {
		writeError(w, err)
		return
	}
	out := make(map[string]api.TarballSet, len(all))
	future := time.Now().Add(environment.MaxVersionSkew).Unix()
	for env, list := range all {
		rec, recorded := h.machine.Tarball(env)
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

// handleEnvTerminal is the WebSocket shell into an environment container
// (the original's messages: input, resize, output, error; plus exit).
func (h *Host) handleEnvTerminal(w http.ResponseWriter, r *http.Request) {
	name, err := envName(r)
	if err != nil {
		writeError(w, err)
		return
	}
	if h.proxyToOwner(w, r, name) {
		return
	}
	up := websocket.Upgrader{ReadBufferSize: 4096, WriteBufferSize: 4096}
	conn, err := up.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade answered the client
	}
	defer conn.Close()
	// Input messages are keystrokes and resizes: refuse anything large
	// instead of buffering it.
	conn.SetReadLimit(64 << 10)
	t := &terminal{conn: conn}
	m, err := h.envManager(r.Context())
	if err != nil {
		t.fail(websocket.CloseInternalServerErr, err.Error())
		return
	}
	rows, _ := strconv.Atoi(r.URL.Query().Get("rows")) //nolint:errcheck // 0 keeps the default size
	cols, _ := strconv.Atoi(r.URL.Query().Get("cols")) //nolint:errcheck // same
	s, err := m.Shell(r.Context(), name, uint(max(rows, 0)), uint(max(cols, 0)))
	switch {
	case errors.Is(err, environment.ErrUnavailable):
		t.fail(websocket.CloseInternalServerErr, "Docker connection error: "+err.Error())
		return
	case errors.Is(err, environment.ErrNoShell):
		t.fail(websocket.CloseInternalServerErr, "No suitable shell found in container.")
		return
	case errors.Is(err, environment.ErrNotFound):
		t.fail(websocket.ClosePolicyViolation, fmt.Sprintf("Container '%s' not found.", name))
		return
	case errors.Is(err, environment.ErrConflict):
		t.fail(websocket.ClosePolicyViolation, environment.Reason(err, environment.ErrConflict))
		return
	case err != nil:
		t.fail(websocket.CloseInternalServerErr, err.Error())
		return
	}
	defer s.Close()
	h.log.Info("environment shell opened", "environment", name, "shell", s.ShellPath())
	t.send(api.TerminalMessage{Type: "output", Data: "Terminal connected.\r\n"})
	t.run(r.Context(), s)
	h.log.Info("environment shell closed", "environment", name)
}

// terminal pumps one shell session over one WebSocket.
type terminal struct {
	conn *websocket.Conn
	wmu  sync.Mutex // gorilla allows one writer at a time
}

func (t *terminal) send(m api.TerminalMessage) error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	t.conn.SetWriteDeadline(time.Now().Add(10 * time.Second)) //nolint:errcheck // a failed write reports it
	return t.conn.WriteJSON(m)
}

// fail sends an error message and closes with code.
func (t *terminal) fail(code int, msg string) {
	t.send(api.TerminalMessage{Type: "error", Data: msg}) //nolint:errcheck // closing anyway
	t.close(code, "")
}

func (t *terminal) close(code int, reason string) {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	deadline := time.Now().Add(time.Second)
	t.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), deadline) //nolint:errcheck // best effort
}

// run copies shell output to the socket and socket input to the shell
// until either side ends; when the shell ends, its exit code is sent.
func (t *terminal) run(ctx context.Context, s EnvShell) {
	outDone := make(chan struct{})
	go func() {
		defer close(outDone)
		buf := make([]byte, 4096)
		var carry []byte
		for {
			n, err := s.Read(buf)
			if n > 0 {
				data := append(carry, buf[:n]...)
				cut := utf8Prefix(data)
				if cut > 0 && t.send(api.TerminalMessage{Type: "output", Data: strings.ToValidUTF8(string(data[:cut]), "\uFFFD")}) != nil {
					return
				}
				carry = append([]byte(nil), data[cut:]...)
			}
			if err != nil {
				return
			}
		}
	}()
	inDone := make(chan struct{})
	go func() {
		defer close(inDone)
		for {
			_, data, err := t.conn.ReadMessage()
			if err != nil {
				return
			}
			var m api.TerminalMessage
			if json.Unmarshal(data, &m) != nil {
				continue // the original ignores invalid JSON
			}
			switch m.Type {
			case "input":
				if _, err := io.WriteString(s, m.Data); err != nil {
					return
				}
			case "resize":
				if m.Rows > 0 && m.Cols > 0 {
					s.Resize(ctx, uint(m.Rows), uint(m.Cols)) //nolint:errcheck // a failed resize leaves the old size
				}
			}
		}
	}()
	select {
	case <-outDone:
		ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		code, err := s.ExitCode(ectx)
		cancel()
		if err != nil {
			t.send(api.TerminalMessage{Type: "error", Data: err.Error()}) //nolint:errcheck // closing anyway
		} else {
			t.send(api.TerminalMessage{Type: "exit", Code: &code}) //nolint:errcheck // closing anyway
		}
		t.close(websocket.CloseNormalClosure, "")
		s.Close() //nolint:errcheck // ends the input side too
		t.conn.Close()
		<-inDone
	case <-inDone:
		s.Close() //nolint:errcheck // hangs the shell up
		<-outDone
		t.close(websocket.CloseNormalClosure, "")
	}
}

// utf8Prefix returns the length of b without a trailing incomplete UTF-8
// sequence, which is sent with the next chunk instead of being mangled.
func utf8Prefix(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return i
			}
			break
		}
	}
	return len(b)
}

// checkEnvironment is the submit-time check of a task's container_name:
// nil for the native marker (environment.Native), for an environment whose container or tarball
// the FSM records (its tarball may come later); otherwise a 400 naming it,
// which says so when tarballs lie in shared storage that the cluster did
// not record (runners never load those).
func (h *Host) checkEnvironment(name string) error {
	if environment.IsNative(name) {
		return nil
	}
	if err := environment.CheckName(name); err != nil {
		return badRequest("container_name %q: unknown environment (%s)", name, environment.Reason(err, environment.ErrInvalid))
	}
	if _, ok := h.machine.Environment(name); ok {
		return nil
	}
	if _, ok := h.machine.Tarball(name); ok {
		return nil
	}
	dir := filepath.Join(h.cfg.SharedDir, h.cfg.ContainerDir)
	all, err := environment.ListTarballs(dir)
	if err != nil {
		return err
	}
	if len(all[name]) > 0 {
		return badRequest("container_name %q: %s holds %s, but this cluster recorded no tarball of it (runners load only tarballs create-tar recorded): run 'hakuriver docker create-tar %s' on a replica holding the environment",
			name, dir, filepath.Base(all[name][0].Path), name)
	}
	return badRequest("container_name %q: unknown environment: no tarball %s-*.tar in %s (create it with 'hakuriver docker create-container' and 'hakuriver docker create-tar')", name, name, dir)
}
