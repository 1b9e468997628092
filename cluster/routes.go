package cluster

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/hakuriver/hakuriver-ha/cluster/httpapi"
	"github.com/hakuriver/hakuriver-ha/ops/dashboard"
)

// routes is the whole route table. Every API endpoint is served under /api
// (canonical) and at the root, as the original host did.
func (h *Host) routes() http.Handler {
	r := chi.NewRouter()
	r.Use(h.metrics.instrument, h.leaderHeader)
	r.Method(http.MethodGet, "/metrics", h.metrics.handler())
	r.Get("/", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ui/", http.StatusFound) })
	r.Handle("/ui/*", http.StripPrefix("/ui/", dashboard.Handler()))
	r.Route("/api", h.apiRoutes)
	h.apiRoutes(r)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, notFound("no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &httpError{status: http.StatusMethodNotAllowed, msg: "method " + r.Method + " not allowed on " + r.URL.Path})
	})
	return r
}

func (h *Host) apiRoutes(r chi.Router) {
	a := h.newAPI()
	r.Post("/submit", httpapi.CheckSubmit(h.onLeader(a.Submit)))
	r.Get("/status/{id}", h.consistentRead(a.Status))
	r.Get("/tasks", h.consistentRead(a.Tasks))
	r.Get("/nodes", h.leaderView(a.Nodes))
	r.Get("/health", h.leaderView(a.Health))
	r.Get("/queue", h.consistentRead(a.Queue))
	r.Post("/nodes/{name}/drain", h.onLeader(a.Drain(true)))
	r.Post("/nodes/{name}/undrain", h.onLeader(a.Drain(false)))
	r.Post("/kill/{id}", h.onLeader(a.Kill))
	r.Post("/command/{id}/{action}", h.onLeader(a.Command))
	r.Get("/task/{id}/stdout", a.Log("stdout"))
	r.Get("/task/{id}/stderr", a.Log("stderr"))
	r.Post("/register", h.requireToken(h.onLeader(a.Register)))
	r.Put("/heartbeat/{hostname}", h.requireToken(h.onLeader(a.Heartbeat)))
	r.Post("/update", h.requireToken(h.onLeader(a.Update)))
	r.Get("/cluster", h.consistentRead(a.Cluster))
	// Membership is an administrator's act: the cluster token is required.
	r.Post("/cluster/join", h.requireToken(h.onLeader(a.Join)))
	r.Post("/cluster/prove", h.handleProve) // answers the leader's challenge (hostproof.go)
	r.Delete("/cluster/peers/{id}", h.requireToken(h.onLeader(a.RemovePeer)))
	r.Post("/cluster/leadership-transfer", h.requireToken(h.onLeader(a.Transfer)))
	e := h.newEnvAPI()
	r.Route("/docker", func(r chi.Router) {
		r.Get("/host/containers", e.List)
		r.Post("/host/create", e.Create)
		r.Post("/host/start/{name}", e.Op("start"))
		r.Post("/host/stop/{name}", e.Op("stop"))
		r.Post("/host/delete/{name}", e.Op("delete"))
		r.Get("/host/containers/{name}/terminal", e.Terminal)
		r.Post("/create_tar/{name}", e.CreateTar)
		r.Get("/list", e.Tarballs)
		r.Post("/internal/environments", h.requireToken(h.onLeader(e.SetEnvironment)))
	})
	// The original's VPS listings, from the local FSM (?consistent=1 asks
	// the leader): every VPS task, newest first, and the active ones with
	// ssh_port once the runner published it.
	r.Get("/vps", h.consistentRead(a.VPSList))
	r.Get("/vps/status", h.consistentRead(a.VPSStatus))
	r.HandleFunc("/doctor", h.requireToken(h.handleDoctor))
}
