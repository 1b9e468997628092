package cluster

import (
	"net/http"

	"github.com/go-chi/chi/v5"

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
	r.Post("/submit", h.checkSubmit(h.onLeader(h.handleSubmit)))
	r.Get("/status/{id}", h.consistentRead(h.handleStatus))
	r.Get("/tasks", h.consistentRead(h.handleTasks))
	r.Get("/nodes", h.leaderView(h.handleNodes))
	r.Get("/health", h.leaderView(h.handleHealth))
	r.Get("/queue", h.consistentRead(h.handleQueue))
	r.Post("/nodes/{name}/drain", h.onLeader(h.handleDrain(true)))
	r.Post("/nodes/{name}/undrain", h.onLeader(h.handleDrain(false)))
	r.Post("/kill/{id}", h.onLeader(h.handleKill))
	r.Post("/command/{id}/{action}", h.onLeader(h.handleCommand))
	r.Get("/task/{id}/stdout", h.handleLog("stdout"))
	r.Get("/task/{id}/stderr", h.handleLog("stderr"))
	r.Post("/register", h.requireToken(h.onLeader(h.handleRegister)))
	r.Put("/heartbeat/{hostname}", h.requireToken(h.onLeader(h.handleHeartbeat)))
	r.Post("/update", h.requireToken(h.onLeader(h.handleUpdate)))
	r.Get("/cluster", h.consistentRead(h.handleCluster))
	// Membership is an administrator's act: the cluster token is required.
	r.Post("/cluster/join", h.requireToken(h.onLeader(h.handleJoin)))
	r.Post("/cluster/prove", h.handleProve) // answers the leader's challenge (hostproof.go)
	r.Delete("/cluster/peers/{id}", h.requireToken(h.onLeader(h.handleRemovePeer)))
	r.Post("/cluster/leadership-transfer", h.requireToken(h.onLeader(h.handleTransfer)))
	h.dockerRoutes(r)
	h.vpsRoutes(r)
	r.HandleFunc("/doctor", h.requireToken(h.handleDoctor))
}
