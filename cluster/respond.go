package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// httpError is a handler-level rejection with its status code.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &httpError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) error {
	return &httpError{status: http.StatusNotFound, msg: fmt.Sprintf(format, args...)}
}

// statusOf maps an error to its HTTP status: the one place that does so.
func statusOf(err error) int {
	var he *httpError
	var fe *api.FieldError
	switch {
	case errors.As(err, &he):
		return he.status
	case errors.As(err, &fe):
		if fe.TooLarge {
			return http.StatusRequestEntityTooLarge
		}
		return http.StatusBadRequest
	case errors.Is(err, fsm.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, fsm.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, fsm.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, ErrUpgradePending):
		return http.StatusConflict
	case errors.Is(err, ErrNotLeader), errors.Is(err, ErrNoLeader), errors.Is(err, fsm.ErrHalted):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// writeJSON writes v as a JSON answer (api.WriteJSON).
func writeJSON(w http.ResponseWriter, status int, v any) { api.WriteJSON(w, status, v) }

func writeError(w http.ResponseWriter, err error) {
	status := statusOf(err)
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	api.WriteError(w, status, err.Error())
}

// decodeJSON reads a JSON body into v, turning decoder errors into 400s
// that name the offending field. It is lenient (unknown fields ignored) for
// the internal runner and replica calls, so that versions may differ during
// an upgrade; requests from people and scripts use decodeStrict.
func decodeJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 16<<20))
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if dec.More() {
		return badRequest("malformed JSON: trailing data after the object")
	}
	return nil
}

// parseTaskID parses a task ID path or query parameter: decimal digits
// only (no sign, no spaces), positive.
func parseTaskID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 || s[0] == '+' {
		return 0, badRequest("task id %q: must be a positive decimal integer", s)
	}
	return id, nil
}
