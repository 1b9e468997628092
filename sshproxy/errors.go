package sshproxy

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. A refused tunnel is a *TunnelError whose Kind is one of
// these, so callers test it with errors.Is.
var (
	// ErrServerClosed is returned by Serve and ServeJump after Close or once
	// their context is cancelled.
	ErrServerClosed = errors.New("sshproxy: server closed")
	// ErrBadRequest: the request line is malformed, too long, or did not
	// arrive in time.
	ErrBadRequest = errors.New("bad tunnel request")
	// ErrTaskNotFound: no task has the requested ID. Resolvers wrap it for
	// an unknown task.
	ErrTaskNotFound = errors.New("task not found")
	// ErrNotVPS: the task is a command task.
	ErrNotVPS = errors.New("task is not a VPS")
	// ErrNotActive: the VPS is not running or paused, or has no node or SSH
	// port yet.
	ErrNotActive = errors.New("VPS is not running")
	// ErrNodeOffline: the VPS's runner node is unknown or offline.
	ErrNodeOffline = errors.New("VPS node is offline")
	// ErrRunnerUnreachable: the VPS's published port on its runner could not
	// be reached (bad runner URL, refused, timeout).
	ErrRunnerUnreachable = errors.New("cannot reach the VPS on its runner")
	// ErrLookup: the Resolver failed for another reason than an unknown task.
	ErrLookup = errors.New("task lookup failed")
	// ErrKeyNotAuthorized: the jump host's client key is not an admin key,
	// nor registered on an account that may reach the VPS, nor (for an
	// anonymous caller the anonymous role allows) the VPS's own key.
	ErrKeyNotAuthorized = errors.New("key not authorized for this VPS")
	// ErrUnauthenticated: a line-protocol request carried an unknown,
	// revoked or expired API token, or none where anonymous callers may
	// not reach the VPS.
	ErrUnauthenticated = errors.New("authentication failed")
	// ErrForbidden: the caller is authenticated but may not reach this VPS
	// (it is another user's, and the caller is not an operator).
	ErrForbidden = errors.New("permission denied")
)

// TunnelError is a refused tunnel. Reason is the exact text the line
// protocol sends after "ERROR " (the original's wording, SPEC §10); Kind is
// one of the sentinel errors above; Err is the underlying cause, if any,
// which is logged but never sent to the client.
type TunnelError struct {
	Kind   error
	Reason string
	Err    error
}

// Error implements error.
func (e *TunnelError) Error() string {
	if e.Err != nil {
		return e.Reason + ": " + e.Err.Error()
	}
	return e.Reason
}

// Unwrap returns Kind and the cause, so errors.Is matches either.
func (e *TunnelError) Unwrap() []error {
	if e.Err != nil {
		return []error{e.Kind, e.Err}
	}
	return []error{e.Kind}
}

// refuse builds a *TunnelError with a formatted reason.
func refuse(kind, cause error, format string, args ...any) *TunnelError {
	return &TunnelError{Kind: kind, Reason: fmt.Sprintf(format, args...), Err: cause}
}

// kindOfReason classifies a reason received from a proxy (the client side
// only has the text).
func kindOfReason(reason string) error {
	switch {
	case strings.HasPrefix(reason, "Authentication "):
		return ErrUnauthenticated
	case strings.HasPrefix(reason, "Permission denied"):
		return ErrForbidden
	case strings.HasSuffix(reason, " not found."):
		return ErrTaskNotFound
	case strings.HasSuffix(reason, " is not a VPS task."):
		return ErrNotVPS
	case strings.Contains(reason, " is not active "), strings.HasSuffix(reason, " has no assigned node."),
		strings.HasSuffix(reason, " has no SSH port assigned."):
		return ErrNotActive
	case strings.HasPrefix(reason, "Assigned node for VPS task "):
		return ErrNodeOffline
	case strings.HasPrefix(reason, "Timeout connecting to Runner"), strings.HasPrefix(reason, "Connection refused by VPS"),
		strings.HasPrefix(reason, "Failed to connect to Runner"), strings.Contains(reason, "runner URL"):
		return ErrRunnerUnreachable
	case strings.HasPrefix(reason, "Invalid "), strings.HasPrefix(reason, "Timeout waiting for request"):
		return ErrBadRequest
	}
	return ErrLookup
}
