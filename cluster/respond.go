package cluster

import (
	"context"
	"net/http"

	"github.com/hakuriver/hakuriver-ha/cluster/httpapi"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// httpError is a handler-level rejection with its status code, for the
// handlers still in this package; httpapi.StatusOf maps it.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

// HTTPStatus is the status httpapi.StatusOf gives the error.
func (e *httpError) HTTPStatus() int { return e.status }

func badRequest(format string, args ...any) error { return httpapi.BadRequest(format, args...) }

func notFound(format string, args ...any) error { return httpapi.NotFound(format, args...) }

// statusOf, writeJSON, writeError and decodeJSON are httpapi's: one error
// mapping for every handler.
func statusOf(err error) int { return httpapi.StatusOf(err) }

func writeJSON(w http.ResponseWriter, status int, v any) { httpapi.WriteJSON(w, status, v) }

func writeError(w http.ResponseWriter, err error) { httpapi.WriteError(w, err) }

func decodeJSON(r *http.Request, v any) error { return httpapi.DecodeJSON(r, v) }

// applyCtx bounds one proposal (httpapi.ApplyContext).
func (h *Host) applyCtx(r *http.Request) (context.Context, context.CancelFunc) {
	return httpapi.ApplyContext(r)
}

func allStatusNames() []fsm.Status { return append(fsm.AllStatuses(), fsm.StatusStopped) }
