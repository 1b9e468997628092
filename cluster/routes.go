package cluster

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/hakuriver/hakuriver-ha/cluster/auth"
	"github.com/hakuriver/hakuriver-ha/cluster/httpapi"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/ops/dashboard"
)

// route is one API endpoint and who may call it.
type route struct {
	method, path string
	rule         auth.Rule
	handler      http.HandlerFunc
}

// Who may call what (see the README's role table).
var (
	public    = auth.Rule{Public: true}
	viewer    = auth.Rule{Role: fsm.RoleViewer}
	user      = auth.Rule{Role: fsm.RoleUser}
	operator  = auth.Rule{Role: fsm.RoleOperator}
	admin     = auth.Rule{Role: fsm.RoleAdmin}
	internal  = auth.Rule{Cluster: true}
	adminOrCT = auth.Rule{Role: fsm.RoleAdmin, Cluster: true}
	// viewerCT also serves the replicas' own lookups (task, nodes,
	// environments) and doctor and metrics scrapes with the cluster token.
	viewerCT = auth.Rule{Role: fsm.RoleViewer, Cluster: true}
)

// apiTable is every API endpoint, served under /api (canonical) and at the
// root, as the original host did. Ownership (a user acting on their own
// tasks only) is checked by the handlers on top of the role.
func (h *Host) apiTable() []route {
	a := h.newAPI()
	e := h.newEnvAPI()
	x := h.newExecAPI()
	return []route{
		{"POST", "/submit", user, httpapi.CheckSubmit(h.onLeader(a.Submit))},
		{"GET", "/status/{id}", viewerCT, h.consistentRead(a.Status)},
		{"GET", "/tasks", viewer, h.consistentRead(h.etagApplied(a.Tasks))},
		{"GET", "/nodes", viewerCT, h.leaderView(etagBody(a.Nodes))},
		// Node health samples: the original's liveness view, anonymous.
		{"GET", "/health", public, h.leaderView(a.Health)},
		{"GET", "/queue", viewer, h.consistentRead(h.etagApplied(a.Queue))},
		{"POST", "/nodes/{name}/drain", operator, h.onLeader(a.Drain(true))},
		{"POST", "/nodes/{name}/undrain", operator, h.onLeader(a.Drain(false))},
		{"POST", "/kill/{id}", user, h.onLeader(a.Kill)},
		{"POST", "/command/{id}/{action}", user, h.onLeader(a.Command)},
		// Kill, pause or resume every task of a batch (owner of every task
		// or operator, as for one task).
		{"POST", "/batch/{id}/{action}", user, h.onLeader(a.Batch)},
		{"GET", "/task/{id}/stdout", user, a.Log("stdout")},
		{"GET", "/task/{id}/stderr", user, a.Log("stderr")},
		// Task access (taskaccess.go): a port forward (upgraded to a raw
		// stream) and file copies (tar streams), owner or operator, served
		// by this replica without the leader.
		{"GET", "/task/{id}/forward", user, h.handleForward},
		{"PUT", "/task/{id}/files", user, h.handlePutFiles},
		{"GET", "/task/{id}/files", user, h.handleGetFiles},
		// A command or shell inside a running task (WebSocket; owner or
		// operator, checked before the upgrade), relayed to its runner
		// from this replica's own state: no leader needed (httpapi/exec.go).
		{"GET", "/task/{id}/exec", user, x.Exec},
		// The sessions of all three (exec, forward, cp), recorded in the
		// audit log by the leader for the replica that served them
		// (sessionaudit.go).
		{"POST", "/audit/sessions", internal, h.onLeader(h.handleSessionRecord)},
		{"POST", "/register", internal, h.onLeader(a.Register)},
		{"PUT", "/heartbeat/{hostname}", internal, h.onLeader(a.Heartbeat)},
		{"POST", "/update", internal, h.onLeader(a.Update)},
		// Many tasks' reports in one entry (runners of this version).
		{"POST", "/updates", internal, h.onLeader(a.Updates)},
		{"GET", "/cluster", viewerCT, h.consistentRead(etagBody(a.Cluster))},
		{"POST", "/cluster/join", adminOrCT, h.onLeader(a.Join)},
		// Every replica's own Raft figures, asked by this one (replicastatus.go).
		{"GET", "/cluster/replicas", viewer, h.handleReplicas},
		// This replica's own state digest, for comparing replicas
		// (statedigest.go): admin or cluster token, as it sizes the state.
		{"GET", "/cluster/state-digest", adminOrCT, h.handleStateDigest},
		// This replica's SSH proxy tunnels per VPS, for the leader's idle
		// auto-stop (vpsidle.go): the cluster token only.
		{"GET", "/cluster/vps-activity", internal, h.handleVPSActivity},
		// Answers the leader's challenge with an HMAC of the cluster token
		// (hostproof.go): it proves, it grants nothing.
		{"POST", "/cluster/prove", public, h.handleProve},
		{"DELETE", "/cluster/peers/{id}", adminOrCT, h.onLeader(a.RemovePeer)},
		{"POST", "/cluster/leadership-transfer", adminOrCT, h.onLeader(a.Transfer)},
		// A backup of the whole state, streamed by the leader (snapshot.go):
		// admin only, it holds token hashes and environment values; not the
		// cluster token, which runners hold. Relayed with an idle bound,
		// not an overall one.
		{"GET", "/cluster/snapshot", admin, h.onLeaderStream(h.handleSnapshot)},
		{"GET", "/docker/host/containers", viewerCT, e.List},
		{"POST", "/docker/host/create", operator, e.Create},
		{"POST", "/docker/host/start/{name}", operator, e.Op("start")},
		{"POST", "/docker/host/stop/{name}", operator, e.Op("stop")},
		{"POST", "/docker/host/delete/{name}", operator, e.Op("delete")},
		{"GET", "/docker/host/containers/{name}/terminal", operator, e.Terminal},
		{"POST", "/docker/create_tar/{name}", operator, e.CreateTar},
		{"GET", "/docker/list", viewer, e.Tarballs},
		{"POST", "/docker/internal/environments", internal, h.onLeader(e.SetEnvironment)},
		// The original's VPS listings, from the local FSM (?consistent=1
		// asks the leader).
		{"GET", "/vps", viewer, h.consistentRead(a.VPSList)},
		{"GET", "/vps/status", viewer, h.consistentRead(a.VPSStatus)},
		// Stop (keep the container) and start a VPS: owner or operator,
		// checked by the handlers (httpapi/vps.go).
		{"POST", "/vps/{id}/stop", user, h.onLeader(a.VPSStop)},
		{"POST", "/vps/{id}/start", user, h.onLeader(a.VPSStart)},
		// VPS snapshots (httpapi/vpssnap.go): owner or operator; a
		// snapshot commits and saves a whole image, relayed with an idle
		// bound rather than the write bound.
		{"POST", "/vps/{id}/snapshot", user, h.onLeaderStream(a.VPSSnapshot)},
		{"GET", "/vps/snapshots", viewer, h.consistentRead(a.VPSSnapshotList)},
		{"DELETE", "/vps/snapshots/{name}", user, h.onLeader(a.VPSSnapshotDelete)},
		{"GET", "/doctor", viewerCT, h.handleDoctor},
		// POST asks this replica to probe addresses with its cluster
		// token: admin or the cluster token only.
		{"POST", "/doctor", adminOrCT, h.handleDoctor},
		// Accounts (httpapi/accounts.go).
		{"POST", "/auth/bootstrap", internal, h.onLeader(a.Bootstrap)},
		{"GET", "/auth/whoami", viewer, a.WhoAmI},
		// A login records a session token and a logout revokes it: on
		// the leader. The browser's Origin is checked here, against the
		// Host it asked for.
		{"POST", "/auth/login", public, originChecked(h.onLeader(a.Login))},
		{"POST", "/auth/logout", public, originChecked(signingOut(h.onLeader(a.Logout)))},
		{"GET", "/users", viewer, h.consistentRead(a.Users)},
		{"POST", "/users", admin, h.onLeader(a.CreateUser)},
		{"GET", "/users/{name}", viewer, h.consistentRead(a.GetUser)},
		{"PATCH", "/users/{name}", admin, h.onLeader(a.PatchUser)},
		{"DELETE", "/users/{name}", admin, h.onLeader(a.DeleteUser)},
		{"GET", "/groups", viewer, h.consistentRead(a.Groups)},
		{"POST", "/groups", admin, h.onLeader(a.CreateGroup)},
		{"PATCH", "/groups/{name}", admin, h.onLeader(a.PatchGroup)},
		{"DELETE", "/groups/{name}", admin, h.onLeader(a.DeleteGroup)},
		{"GET", "/tokens", user, h.consistentRead(a.Tokens)},
		{"POST", "/tokens", user, h.onLeader(a.CreateTokenFor)},
		{"DELETE", "/tokens/{id}", user, h.onLeader(a.RevokeToken)},
		{"GET", "/audit", viewer, h.consistentRead(a.Audit)},
		{"GET", "/quota", viewer, h.consistentRead(a.Quota)},
		// Accounting of the tasks (httpapi/usage.go).
		{"GET", "/usage", viewer, h.consistentRead(a.Usage)},
		// The dashboards' change feed (events.go): Server-Sent Events.
		{"GET", "/events", viewer, h.handleEvents},
	}
}

// routes is the whole HTTP surface of a replica.
func (h *Host) routes() http.Handler {
	r := chi.NewRouter()
	r.Use(h.metrics.instrument, h.leaderHeader)
	r.Method(http.MethodGet, "/metrics", h.guard(viewerCT, h.metrics.handler().ServeHTTP))
	// The dashboard's static files and its login page are public; every
	// call they make is an API call with its own rule.
	r.Get("/", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ui/", http.StatusFound) })
	r.Handle("/ui/*", http.StripPrefix("/ui", dashboard.Handler()))
	r.Get("/ui", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ui/", http.StatusFound) })
	table := h.apiTable()
	mount := func(r chi.Router) {
		for _, rt := range table {
			r.Method(rt.method, rt.path, h.guard(rt.rule, rt.handler))
		}
	}
	r.Route("/api", mount)
	mount(r)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, notFound("no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &httpError{status: http.StatusMethodNotAllowed, msg: "method " + r.Method + " not allowed on " + r.URL.Path})
	})
	return r
}

// guard authenticates a request and lets it through when rule allows its
// caller, with the caller in the request's context; otherwise it answers
// 401 (no or bad credentials; the message never says whether an account
// exists) or 403 (naming the role needed).
func (h *Host) guard(rule auth.Rule, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := h.auth.Check(rule, r)
		if auth.IsUnknownToken(err) {
			if h.askLeader(w, r) {
				return
			}
			// This replica may have become the leader meanwhile: once it
			// is ready it holds every committed token.
			h.waitLeaderReady(r.Context())
			p, err = h.auth.Check(rule, r)
		}
		if err != nil {
			h.log.Info("rejected call", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "err", err)
			writeError(w, err)
			return
		}
		next(w, r.WithContext(auth.WithPrincipal(r.Context(), p)))
	}
}
