package main

import (
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// addRetries fills the retry fields of req from --retries, --retry-delay
// and --retry-on, checking them as the host does.
func (o *submitOptions) addRetries(req *api.SubmitRequest) error {
	if o.retries < 0 || o.retries > fsm.MaxRetries {
		return fmt.Errorf("invalid --retries %d: want 0..%d", o.retries, fsm.MaxRetries)
	}
	if o.retries == 0 {
		if o.retryDelay != "" || len(o.retryOn) > 0 {
			return fmt.Errorf("--retry-delay and --retry-on need --retries N (N > 0)")
		}
		return nil
	}
	req.Retries = o.retries
	if o.retryDelay != "" {
		d, err := time.ParseDuration(strings.TrimSpace(o.retryDelay))
		if err != nil || d < 0 || d > fsm.MaxRetryDelay {
			return fmt.Errorf("invalid --retry-delay %q: want a duration from 0 to 24h, e.g. 30s or 5m", o.retryDelay)
		}
		req.RetryDelay = d.String()
	}
	if len(o.retryOn) > 0 {
		on := make([]string, 0, len(o.retryOn))
		for _, s := range o.retryOn {
			on = append(on, strings.TrimSpace(s))
		}
		norm, err := fsm.NormalizeRetryOn(on)
		if err != nil {
			return fmt.Errorf("invalid --retry-on: %w", err)
		}
		req.RetryOn = norm
	}
	return nil
}

// retryRows adds a task's retry state and policy to "task status".
func retryRows(kv func(k, v string), t fsm.Task) {
	if t.Retries == 0 {
		return
	}
	kv("Attempt", t.RetryLabel())
	policy := fmt.Sprintf("up to %d on %s", t.Retries, fsm.RetryOnString(t.RetryOn))
	if t.RetryDelayMS > 0 {
		policy += ", after " + (time.Duration(t.RetryDelayMS) * time.Millisecond).String()
	}
	if t.NoRetry {
		policy += " (stopped: killed)"
	}
	kv("Retries", policy)
}

// attemptRows lists a task's ended attempts in "task status".
func attemptRows(tw *tabwriter.Writer, t fsm.Task) {
	for i, a := range t.Attempts {
		k := ""
		if i == 0 {
			k = "Attempts:"
		}
		code := "-"
		if a.ExitCode != nil {
			code = strconv.Itoa(*a.ExitCode)
		}
		row(tw, k, fmt.Sprintf("#%d %s exit %s on %s, %s - %s", a.Attempt, a.Status, code, orDash(a.Node),
			formatTimePtr(a.StartedAt), formatTimePtr(a.CompletedAt)))
	}
}

// attemptCell is the ATTEMPT column of "task list": "2/3" for attempt 2 of
// at most 3, with "+" while the next attempt is due, "-" for a task without
// retries.
func attemptCell(t fsm.Task) string {
	if t.Retries == 0 {
		return "-"
	}
	s := fmt.Sprintf("%d/%d", t.CurrentAttempt(), t.Retries+1)
	if t.RetryPending() {
		s += "+"
	}
	return s
}
