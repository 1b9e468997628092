package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/cluster/notify"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/ops/environment"
)

// submitKey is the context key of the submit request CheckSubmit decoded.
type submitKey struct{}

// CheckSubmit reads, decodes and checks a submit on the replica that
// receives it, before it is forwarded to the leader or reaches the Raft
// log: a body over api.MaxSubmitBodyBytes is a 413, a request that breaks
// the submit contract (decodeStrict, validateSubmit) a 400 or 413 naming
// the field. The decoded request travels to next in the context, so the
// leader does not decode it twice.
func CheckSubmit(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := readBody(w, r, api.MaxSubmitBodyBytes)
		if err != nil {
			writeError(w, err)
			return
		}
		req := new(api.SubmitRequest)
		if err := decodeStrict(body, req); err != nil {
			writeError(w, err)
			return
		}
		if err := checkRequestID(r.Header.Get(api.RequestIDHeader)); err != nil {
			writeError(w, err)
			return
		}
		if err := validateSubmit(req); err != nil {
			writeError(w, err)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next(w, r.WithContext(context.WithValue(r.Context(), submitKey{}, req)))
	}
}

// submitRequest returns the request CheckSubmit decoded and checked.
func submitRequest(r *http.Request) (*api.SubmitRequest, error) {
	if req, ok := r.Context().Value(submitKey{}).(*api.SubmitRequest); ok {
		return req, nil
	}
	// Not behind CheckSubmit (a route added without it): do its work here.
	body, err := readBody(nil, r, api.MaxSubmitBodyBytes)
	if err != nil {
		return nil, err
	}
	req := new(api.SubmitRequest)
	if err := decodeStrict(body, req); err != nil {
		return nil, err
	}
	return req, validateSubmit(req)
}

// checkRequestID accepts an idempotency key of at most
// api.MaxRequestIDBytes printable ASCII characters ("" for none): it is
// stored in the Raft log with the tasks it created.
func checkRequestID(id string) error {
	if len(id) > api.MaxRequestIDBytes {
		return &api.FieldError{Field: "request_id", Reason: fmt.Sprintf("%d bytes, more than the limit of %d", len(id), api.MaxRequestIDBytes), TooLarge: true}
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return badRequest("request_id: byte %d is not printable ASCII (want letters, digits and punctuation)", i)
		}
	}
	return nil
}

// validateSubmit checks everything in a submit that does not depend on the
// cluster's state, so that any replica can refuse a bad request on its own.
// buildTasks checks the rest (environments, targets, capacity) on the
// leader.
func validateSubmit(req *api.SubmitRequest) error {
	typ := fsm.TaskType(req.TaskType)
	if typ != "" && typ != fsm.TaskCommand && typ != fsm.TaskVPS {
		return badRequest("task_type %q: only 'command' and 'vps' are supported", req.TaskType)
	}
	if err := checkRequestID(req.RequestID); err != nil {
		return err
	}
	if typ != fsm.TaskVPS && strings.TrimSpace(req.Command) == "" {
		return badRequest("command: must not be empty")
	}
	if err := api.CheckTaskPayload(api.TaskPayload{
		Command: req.Command, Arguments: req.Arguments, EnvVars: req.EnvVars,
		WorkDir: req.WorkDir, Mounts: req.AdditionalMounts,
	}); err != nil {
		return err
	}
	if typ == fsm.TaskVPS {
		if req.ContainerName != nil && environment.IsNative(*req.ContainerName) {
			return badRequest("container_name: VPS tasks require a Docker container")
		}
		if len(req.Targets) > 1 {
			return badRequest("targets: VPS tasks cannot be submitted to multiple targets")
		}
		if err := checkVPSKey(req.Command); err != nil {
			return err
		}
	}
	if req.RequiredCores != nil && (*req.RequiredCores < 0 || *req.RequiredCores > maxCores) {
		return badRequest("required_cores: %d is out of range (0..%d)", *req.RequiredCores, maxCores)
	}
	if m := req.RequiredMemoryBytes; m != nil && (*m < 0 || *m > maxMemoryBytes) {
		return badRequest("required_memory_bytes: %d is out of range (0..%d)", *m, maxMemoryBytes)
	}
	if req.ContainerName != nil && strings.IndexByte(*req.ContainerName, 0) >= 0 {
		return badRequest("container_name: contains a NUL byte")
	}
	for i, tg := range req.Targets {
		if !api.TargetRE().MatchString(tg) {
			return badRequest("targets[%d] %q: expected HOST or HOST:NUMA_ID", i, tg)
		}
	}
	if len(req.RequiredGPUs) > 0 && len(req.RequiredGPUs) != len(req.Targets) {
		return badRequest("required_gpus: %d GPU lists for %d targets (one list per target; GPUs need a target)", len(req.RequiredGPUs), len(req.Targets))
	}
	for i, gpus := range req.RequiredGPUs {
		for _, g := range gpus {
			if g < 0 {
				return badRequest("required_gpus[%d]: GPU ID %d is negative", i, g)
			}
		}
	}
	if err := checkRetries(req); err != nil {
		return err
	}
	if req.Priority < -1000 || req.Priority > 1000 {
		return badRequest("priority: %d is out of range (-1000..1000)", req.Priority)
	}
	if req.GPUCount < 0 || req.GPUCount > 64 {
		return badRequest("gpu_count: %d is out of range (0..64)", req.GPUCount)
	}
	if req.GPUCount > 0 && len(req.RequiredGPUs) > 0 {
		return badRequest("gpu_count and required_gpus: give a GPU count or GPU IDs on targets, not both")
	}
	if req.TimeLimitSeconds < 0 {
		return badRequest("time_limit_seconds: %d is negative", req.TimeLimitSeconds)
	}
	for i, a := range req.After {
		if _, err := ParseTaskID(a); err != nil {
			return badRequest("after[%d]: %q is not a task ID", i, a)
		}
	}
	if req.Name != "" && !fsm.ValidTaskName(req.Name) {
		return badRequest("name %q: want 1-%d letters, digits, '.', '_' or '-', starting with a letter or digit and not all digits", req.Name, fsm.MaxTaskNameLen)
	}
	if req.Notify != "" {
		if err := notify.CheckURL(req.Notify); err != nil {
			return badRequest("notify: %v", err)
		}
	}
	if err := checkArgumentSets(req); err != nil {
		return err
	}
	if req.Array != "" {
		if len(req.Targets) > 1 {
			return badRequest("array: an array job takes at most one target")
		}
		if strings.IndexByte(req.Array, 0) >= 0 {
			return badRequest("array: contains a NUL byte")
		}
	}
	return nil
}

// checkArgumentSets checks a sweep's argument sets: a command task with
// no arguments of its own, at most maxArray sets, one target at most, each
// set within the submit contract.
func checkArgumentSets(req *api.SubmitRequest) error {
	if req.ArgumentSets == nil {
		return nil
	}
	switch {
	case len(req.ArgumentSets) == 0:
		return badRequest("argument_sets: empty (give at least one set or leave it out)")
	case len(req.ArgumentSets) > maxArray:
		return &api.FieldError{Field: "argument_sets", TooLarge: true, Reason: fmt.Sprintf("%d sets, more than the limit of %d tasks", len(req.ArgumentSets), maxArray)}
	case req.TaskType == string(fsm.TaskVPS):
		return badRequest("argument_sets: VPS tasks take no arguments")
	case len(req.Arguments) > 0:
		return badRequest("argument_sets: give arguments or argument_sets, not both")
	case len(req.Targets) > 1:
		return badRequest("argument_sets: a sweep takes at most one target")
	}
	for i, set := range req.ArgumentSets {
		err := api.CheckTaskPayload(api.TaskPayload{Command: req.Command, Arguments: set})
		var fe *api.FieldError
		if errors.As(err, &fe) {
			return &api.FieldError{Field: fmt.Sprintf("argument_sets[%d]", i), Reason: fe.Error(), TooLarge: fe.TooLarge}
		} else if err != nil {
			return err
		}
	}
	return nil
}

// sweepIndexes is the array indexes and throttle of a sweep: 0..len-1, with
// req.Array (when given) listing exactly those.
func sweepIndexes(req *api.SubmitRequest) ([]int, int, error) {
	n := len(req.ArgumentSets)
	indexes := make([]int, n)
	for i := range indexes {
		indexes[i] = i
	}
	if req.Array == "" {
		return indexes, 0, nil
	}
	got, throttle, err := parseArray(req.Array)
	if err != nil {
		return nil, 0, badRequest("%v", err)
	}
	if !slices.Equal(got, indexes) {
		return nil, 0, badRequest("array %q: with %d argument_sets it must list exactly the indexes 0-%d", req.Array, n, n-1)
	}
	return indexes, throttle, nil
}

// checkStoredSize bounds what a submit of n tasks stores in the Raft log.
func checkStoredSize(req *api.SubmitRequest, n int) error {
	per := api.TaskPayload{Command: req.Command, Arguments: req.Arguments, EnvVars: req.EnvVars,
		WorkDir: req.WorkDir, Mounts: req.AdditionalMounts}.Size()
	if len(req.ArgumentSets) > 0 {
		total := 0
		for _, set := range req.ArgumentSets {
			total += per + api.TaskPayload{Arguments: set}.Size()
		}
		if total > api.MaxSubmitStoredBytes {
			return &api.FieldError{Field: "argument_sets", TooLarge: true,
				Reason: fmt.Sprintf("%d tasks store %d bytes, more than the limit of %d bytes; pass large inputs through shared_data", len(req.ArgumentSets), total, api.MaxSubmitStoredBytes)}
		}
		return nil
	}
	if n > 1 && per > api.MaxSubmitStoredBytes/n {
		return &api.FieldError{Field: "array", TooLarge: true,
			Reason: fmt.Sprintf("%d tasks (targets × array indexes) of %d bytes each store more than the limit of %d bytes; pass large inputs through shared_data", n, per, api.MaxSubmitStoredBytes)}
	}
	return nil
}

// noBody accepts an absent or empty body, "{}" or "null": the endpoint takes
// no parameters in its body, and anything else there would be ignored.
func noBody(r *http.Request) error {
	b, err := readBody(nil, r, 1<<10)
	if err != nil {
		return err
	}
	switch string(bytes.TrimSpace(b)) {
	case "", "{}", "null":
		return nil
	}
	return badRequest("request body: this endpoint takes no body (its parameters are in the path: %s)", strconv.Quote(r.URL.Path))
}

// checkVPSKey validates a VPS submit's command: its owner's public keys in
// authorized_keys format (blank and # lines ignored), which the runner
// installs for root and the SSH jump host checks. At least one is needed,
// and every other line must be one too.
func checkVPSKey(command string) error {
	n := 0
	for _, line := range strings.Split(command, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line)); err != nil {
			if len(line) > 40 {
				line = line[:37] + "..."
			}
			return badRequest("command: a VPS's command is its SSH public key; %q is not an OpenSSH public key", line)
		}
		n++
	}
	if n == 0 {
		return badRequest("command: a VPS needs an SSH public key (e.g. the contents of ~/.ssh/id_ed25519.pub)")
	}
	return nil
}

// maxMemoryBytes bounds required_memory_bytes (1 PiB): anything larger is a
// typo, not a lab machine.
const maxMemoryBytes = int64(1) << 50

// maxCores bounds required_cores.
const maxCores = 1 << 16

// checkRetries checks the retry fields of a submit: retries 0..fsm.MaxRetries
// (command tasks only), retry_delay a duration from 0 to fsm.MaxRetryDelay,
// retry_on known conditions; the last two only with retries.
func checkRetries(req *api.SubmitRequest) error {
	if req.Retries < 0 || req.Retries > fsm.MaxRetries {
		return badRequest("retries: %d is out of range (0..%d)", req.Retries, fsm.MaxRetries)
	}
	if req.Retries > 0 && req.TaskType == string(fsm.TaskVPS) {
		return badRequest("retries: VPS tasks are not retried (command tasks only)")
	}
	if req.RetryDelay != "" {
		if req.Retries == 0 {
			return badRequest("retry_delay: given without retries")
		}
		if _, err := retryDelay(req.RetryDelay); err != nil {
			return err
		}
	}
	if len(req.RetryOn) > 0 {
		if req.Retries == 0 {
			return badRequest("retry_on: given without retries")
		}
		if _, err := fsm.NormalizeRetryOn(req.RetryOn); err != nil {
			return badRequest("retry_on: %v", err)
		}
	}
	return nil
}

// retryDelay parses a submit's retry_delay ("" is 0).
func retryDelay(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, badRequest("retry_delay %q: not a duration (want e.g. 30s, 5m, 1h)", s)
	}
	if d < 0 || d > fsm.MaxRetryDelay {
		return 0, badRequest("retry_delay %q: out of range (0 to %s)", s, fsm.MaxRetryDelay)
	}
	return d, nil
}
