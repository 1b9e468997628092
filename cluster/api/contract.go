package api

import (
	"fmt"
	"path"
	"strings"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// Limits of the submit contract. The host checks them at submit, before
// anything reaches the Raft log, and the runner checks the same ones on
// /run, so the cluster never stores a task its runners would refuse.
const (
	// MaxSubmitBodyBytes bounds the body of POST /api/submit (413 above).
	MaxSubmitBodyBytes = 1 << 20
	// MaxCommandBytes bounds a task's command plus all its arguments.
	MaxCommandBytes = 256 << 10
	// MaxArgBytes bounds one command or argument string: Linux refuses to
	// exec a string longer than MAX_ARG_STRLEN (128 KiB with its NUL).
	MaxArgBytes = 128<<10 - 1
	// MaxArguments bounds the number of arguments (each costs execve a
	// pointer besides its bytes).
	MaxArguments = 16 << 10
	// MaxEnvBytes bounds a task's environment: the sum over its variables
	// of len(NAME) + 1 + len(VALUE).
	MaxEnvBytes = 64 << 10
	// MaxPathBytes bounds working_dir and each side of a mount (PATH_MAX).
	MaxPathBytes = 4096
	// MaxMounts bounds additional_mounts.
	MaxMounts = 64
	// MaxRequestIDBytes bounds request_id (and the request ID header).
	MaxRequestIDBytes = 128
	// MaxSubmitStoredBytes bounds what one submit stores in the Raft log:
	// the number of tasks it creates (targets × array indexes) times each
	// task's command, arguments, environment, working_dir and mounts.
	MaxSubmitStoredBytes = 8 << 20
	// MaxRunBodyBytes bounds the body of the runner's POST /run. It holds
	// the largest valid task JSON-escaped (up to 6 bytes per byte, as
	// "\u003c"): command, arguments, environment, working_dir and mounts at
	// their limits take about 840 KiB, 5 MiB escaped.
	MaxRunBodyBytes = 8 << 20
	// RunEnvReserve is the room the host keeps in a task's environment for
	// the variables it adds on /run (HAKURIVER_TASK_ID and the like): the
	// runner accepts MaxEnvBytes + RunEnvReserve.
	RunEnvReserve = 1 << 10
)

// FieldError is a request field that breaks the submit contract. TooLarge
// marks a size limit (HTTP 413); any other violation is a 400.
type FieldError struct {
	Field    string
	Reason   string
	TooLarge bool
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

func tooLarge(field string, n, limit int, what string) *FieldError {
	return &FieldError{Field: field, Reason: fmt.Sprintf("%s %d bytes, more than the limit of %d", what, n, limit), TooLarge: true}
}

// TaskPayload is the part of a task that travels from a submit through the
// Raft log to a runner and into exec: what CheckTaskPayload checks.
type TaskPayload struct {
	Command   string
	Arguments []string
	EnvVars   map[string]string
	WorkDir   string
	Mounts    []string
}

// Size is the number of bytes the payload's strings take.
func (p TaskPayload) Size() int {
	n := len(p.Command) + len(p.WorkDir)
	for _, a := range p.Arguments {
		n += len(a)
	}
	for k, v := range p.EnvVars {
		n += len(k) + 1 + len(v)
	}
	for _, m := range p.Mounts {
		n += len(m)
	}
	return n
}

// CheckTaskPayload checks the payload against the submit contract: the size
// limits above, no NUL byte anywhere, environment names matching
// [A-Za-z_][A-Za-z0-9_]*, an absolute and clean working directory (or none)
// and mounts that ParseMount accepts. The error is a *FieldError naming the
// field (in the submit request's terms).
func CheckTaskPayload(p TaskPayload) error {
	return checkPayload(p, MaxEnvBytes)
}

// CheckRunRequest is the runner's CheckTaskPayload on a /run body, whose
// environment may hold RunEnvReserve more bytes (the host's variables).
func CheckRunRequest(r RunRequest) error {
	if r.RunAs != "" && !fsm.ValidUnixUser(r.RunAs) {
		return &FieldError{Field: "run_as", Reason: fmt.Sprintf("%q is not a Unix user name or UID[:GID]", r.RunAs)}
	}
	return checkPayload(TaskPayload{
		Command: r.Command, Arguments: r.Arguments, EnvVars: r.EnvVars, WorkDir: r.WorkDir, Mounts: r.DockerMounts,
	}, MaxEnvBytes+RunEnvReserve)
}

func checkPayload(p TaskPayload, maxEnv int) error {
	if len(p.Arguments) > MaxArguments {
		return &FieldError{Field: "arguments", Reason: fmt.Sprintf("%d arguments, more than the limit of %d", len(p.Arguments), MaxArguments), TooLarge: true}
	}
	total := len(p.Command)
	for _, a := range p.Arguments {
		total += len(a)
	}
	if total > MaxCommandBytes {
		return tooLarge("arguments", total, MaxCommandBytes, "command and arguments take")
	}
	if len(p.Command) > MaxArgBytes {
		return tooLarge("command", len(p.Command), MaxArgBytes, "one string of")
	}
	if err := noNUL("command", p.Command); err != nil {
		return err
	}
	for i, a := range p.Arguments {
		f := fmt.Sprintf("arguments[%d]", i)
		if len(a) > MaxArgBytes {
			return tooLarge(f, len(a), MaxArgBytes, "one string of")
		}
		if err := noNUL(f, a); err != nil {
			return err
		}
	}
	env := 0
	for k, v := range p.EnvVars {
		env += len(k) + 1 + len(v)
	}
	if env > maxEnv {
		return tooLarge("env_vars", env, maxEnv, "the environment takes")
	}
	for k, v := range p.EnvVars {
		if !ValidEnvName(k) {
			return fieldErr("env_vars", "invalid variable name %q: names match [A-Za-z_][A-Za-z0-9_]*", k)
		}
		if err := noNUL("env_vars."+k, v); err != nil {
			return err
		}
	}
	if p.WorkDir != "" {
		if err := checkAbsPath("working_dir", p.WorkDir); err != nil {
			return err
		}
	}
	if len(p.Mounts) > MaxMounts {
		return fieldErr("additional_mounts", "%d mounts, more than the limit of %d", len(p.Mounts), MaxMounts)
	}
	for i, m := range p.Mounts {
		if _, err := ParseMount(m); err != nil {
			return fieldErr(fmt.Sprintf("additional_mounts[%d]", i), "%v", err)
		}
	}
	return nil
}

// ValidEnvName reports whether s matches [A-Za-z_][A-Za-z0-9_]*.
func ValidEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

func noNUL(field, s string) *FieldError {
	if i := strings.IndexByte(s, 0); i >= 0 {
		return fieldErr(field, "contains a NUL byte at offset %d", i)
	}
	return nil
}

// checkAbsPath accepts an absolute, clean path without NUL bytes of at most
// MaxPathBytes.
func checkAbsPath(field, p string) *FieldError {
	if err := noNUL(field, p); err != nil {
		return err
	}
	if len(p) > MaxPathBytes {
		return tooLarge(field, len(p), MaxPathBytes, "a path of")
	}
	if err := absClean(p); err != nil {
		return fieldErr(field, "%q %s", p, err.Error())
	}
	return nil
}

func absClean(p string) error {
	if !path.IsAbs(p) {
		return fmt.Errorf("is not an absolute path")
	}
	if path.Clean(p) != p {
		return fmt.Errorf("is not a clean path (no \"..\", \".\", \"//\" or trailing \"/\"; want %q)", path.Clean(p))
	}
	return nil
}

// Mount is one parsed "host:container[:options]" bind mount.
type Mount struct {
	// Source is the absolute, clean host path.
	Source string
	// Target is the absolute, clean path inside the container (not "/").
	Target string
	// ReadOnly is set by the "ro" (or "readonly") option.
	ReadOnly bool
}

// ParseMount parses a bind mount "HOST_PATH:CONTAINER_PATH[:OPTIONS]", the
// one parser of the host (at submit and for its configured defaults), the
// CLI and the runner's Docker executor. Both paths must be absolute and
// clean, the container path not "/"; OPTIONS is a comma-separated list of
// "ro" (also "readonly") or "rw", not both. Whether the runner lets a task
// mount the host path is the runner's policy, checked there.
func ParseMount(spec string) (Mount, error) {
	var m Mount
	if strings.IndexByte(spec, 0) >= 0 {
		return m, fmt.Errorf("mount %q: contains a NUL byte", spec)
	}
	parts := strings.Split(spec, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return m, fmt.Errorf("mount %q: want HOST_PATH:CONTAINER_PATH[:ro|rw]", spec)
	}
	for i, side := range []string{"host path", "container path"} {
		p := parts[i]
		if p == "" {
			return m, fmt.Errorf("mount %q: empty %s", spec, side)
		}
		if len(p) > MaxPathBytes {
			return m, fmt.Errorf("mount %q: %s longer than %d bytes", spec, side, MaxPathBytes)
		}
		if err := absClean(p); err != nil {
			return m, fmt.Errorf("mount %q: %s %q %w", spec, side, p, err)
		}
	}
	m.Source, m.Target = parts[0], parts[1]
	if m.Target == "/" {
		return m, fmt.Errorf("mount %q: the container path cannot be /", spec)
	}
	if len(parts) == 3 {
		ro, rw := false, false
		for _, o := range strings.Split(parts[2], ",") {
			switch o {
			case "ro", "readonly":
				ro = true
			case "rw":
				rw = true
			case "":
				return m, fmt.Errorf("mount %q: empty option", spec)
			default:
				return m, fmt.Errorf("mount %q: unknown option %q (want ro or rw)", spec, o)
			}
		}
		if ro && rw {
			return m, fmt.Errorf("mount %q: options ro and rw together", spec)
		}
		m.ReadOnly = ro
	}
	return m, nil
}
