package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// ErrNotLeader is returned when a write reaches a replica that is not (or
// no longer) the leader; it answers 503 with Retry-After.
var ErrNotLeader = errors.New("not the leader")

// ErrNoLeader is returned when no leader is known within the wait; it
// answers 503 with Retry-After.
var ErrNoLeader = errors.New("no leader")

// ErrUpgradePending is returned when the leader will not propose a command
// because a replica it sees does not know the command's type yet; it
// answers 409.
var ErrUpgradePending = errors.New("upgrade pending")

// ErrInsufficientStorage is returned when a replica refuses a write because
// its data dir's filesystem is below min_free_disk; it answers 507.
var ErrInsufficientStorage = errors.New("insufficient storage")

// httpError is a handler-level rejection with its status code.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

// HTTPStatus is the status StatusOf gives the error.
func (e *httpError) HTTPStatus() int { return e.status }

// BadRequest returns a 400 error; the message names the offending field.
func BadRequest(format string, args ...any) error {
	return &httpError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

// NotFound returns a 404 error.
func NotFound(format string, args ...any) error {
	return &httpError{status: http.StatusNotFound, msg: fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) error { return BadRequest(format, args...) }

func notFound(format string, args ...any) error { return NotFound(format, args...) }

// StatusOf maps an error to its HTTP status: the one place that does so.
// An error in the chain with an HTTPStatus() int method gives its own.
func StatusOf(err error) int {
	var he interface{ HTTPStatus() int }
	var fe *api.FieldError
	switch {
	case errors.As(err, &he):
		return he.HTTPStatus()
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
	case errors.Is(err, ErrInsufficientStorage):
		return http.StatusInsufficientStorage
	case errors.Is(err, ErrNotLeader), errors.Is(err, ErrNoLeader), errors.Is(err, fsm.ErrHalted):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// WriteJSON writes v as a JSON answer (api.WriteJSON).
func WriteJSON(w http.ResponseWriter, status int, v any) { api.WriteJSON(w, status, v) }

// WriteError answers err with the status StatusOf gives it; a 503 says to
// retry after a second.
func WriteError(w http.ResponseWriter, err error) {
	status := StatusOf(err)
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	api.WriteError(w, status, err.Error())
}

func writeJSON(w http.ResponseWriter, status int, v any) { WriteJSON(w, status, v) }

func writeError(w http.ResponseWriter, err error) { WriteError(w, err) }

// DecodeJSON reads a JSON body into v, turning decoder errors into 400s
// that name the offending field. It is lenient (unknown fields ignored) for
// the internal runner and replica calls, so that versions may differ during
// an upgrade; requests from people and scripts are decoded strictly
// (decodeStrict).
func DecodeJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 16<<20))
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if dec.More() {
		return badRequest("malformed JSON: trailing data after the object")
	}
	return nil
}

// ParseTaskID parses a task ID path or query parameter: decimal digits
// only (no sign, no spaces), positive.
func ParseTaskID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 || s[0] == '+' {
		return 0, badRequest("task id %q: must be a positive decimal integer", s)
	}
	return id, nil
}

// ApplyContext bounds one proposal made for request r.
func ApplyContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), 10*time.Second)
}
