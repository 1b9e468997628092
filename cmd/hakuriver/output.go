package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Output formats of the client commands (--output).
const (
	outputTable = "table"
	outputJSON  = "json"
)

// printJSON writes v as indented JSON followed by a newline.
func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode json output: %w", err)
	}
	b = append(b, '\n')
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// newTable returns a tabwriter for aligned columns; the caller writes
// tab-separated cells and calls Flush.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}

// flushTable flushes a table and wraps a write error.
func flushTable(tw *tabwriter.Writer) error {
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// row writes one tab-separated table row.
func row(w io.Writer, cells ...string) {
	// A write error is sticky in tabwriter and reported by flushTable.
	_, _ = fmt.Fprintln(w, strings.Join(cells, "\t"))
}

// orDash returns s, or "-" when s is empty.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// formatBytes renders a byte count with binary units ("1.5GiB"); 0 is "-".
func formatBytes(n int64) string {
	if n <= 0 {
		return "-"
	}
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + "B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// formatTime renders a time in the local zone, or "-" for the zero time.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

// formatTimePtr is formatTime for an optional time.
func formatTimePtr(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return formatTime(*t)
}

// formatInts renders a list of integers as "0,1" ("-" when empty).
func formatInts(v []int) string {
	if len(v) == 0 {
		return "-"
	}
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

// commandLine renders a command and its arguments as one shell-like line,
// quoting the words that need it.
func commandLine(command string, args []string) string {
	words := make([]string, 0, len(args)+1)
	for _, w := range append([]string{command}, args...) {
		if w == "" || strings.ContainsAny(w, " \t\n\"'\\$`|&;<>()*?[]{}#~") {
			w = strconv.Quote(w)
		}
		words = append(words, w)
	}
	return strings.Join(words, " ")
}

// truncate shortens s to at most n runes, marking the cut with "...".
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	if n <= 3 {
		return string(r[:n])
	}
	return string(r[:n-3]) + "..."
}

// formatSize renders a byte count compactly with binary units, as free -h
// does: "512B", "1.2G", "16G" (one decimal below 10); 0 is "0".
func formatSize(n int64) string {
	if n <= 0 {
		return "0"
	}
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + "B"
	}
	v, exp := float64(n)/unit, 0
	for v >= unit && exp < 4 {
		v /= unit
		exp++
	}
	s := fmt.Sprintf("%.0f", v)
	if v < 9.95 {
		s = strings.TrimSuffix(fmt.Sprintf("%.1f", v), ".0")
	}
	return s + string("KMGTP"[exp])
}

// formatPercent renders an optional percentage as "12.5", or "-" when unknown.
func formatPercent(p *float64) string {
	if p == nil {
		return "-"
	}
	return strconv.FormatFloat(*p, 'f', 1, 64)
}

// formatTemps renders an optional average and maximum temperature as
// "45.0/61.5" ("-" for an unknown one, "-" when both are unknown).
func formatTemps(avg, maxT *float64) string {
	if avg == nil && maxT == nil {
		return "-"
	}
	return formatPercent(avg) + "/" + formatPercent(maxT)
}

// formatAge renders how long before now t was: "3s ago", "5m ago", "2h ago",
// "4d ago"; a time in the future (clock skew) counts as "0s ago".
func formatAge(t, now time.Time) string {
	d := max(now.Sub(t), 0)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d/time.Hour))
	}
	return fmt.Sprintf("%dd ago", int(d/(24*time.Hour)))
}

// formatAgeRFC3339 is formatAge for an optional RFC 3339 timestamp as the
// API serves it: "-" when nil, the raw text when it does not parse.
func formatAgeRFC3339(ts *string, now time.Time) string {
	if ts == nil || *ts == "" {
		return "-"
	}
	t, err := time.Parse(time.RFC3339Nano, *ts)
	if err != nil {
		return *ts
	}
	return formatAge(t, now)
}

// formatRFC3339 is formatTime for an RFC 3339 timestamp as the API serves
// it: "-" when empty, the raw text when it does not parse.
func formatRFC3339(ts string) string {
	if ts == "" {
		return "-"
	}
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return ts
	}
	return formatTime(t)
}

// exitCodeError is an error after which the process should exit with code
// instead of the usual 1 (for example "task wait" of a single task that
// failed with exit code 3). main maps it through ExitCode; Error is printed
// as for any other error.
type exitCodeError struct {
	code int
	msg  string
}

// Error implements error.
func (e *exitCodeError) Error() string { return e.msg }

// ExitCode returns the process exit code to use.
func (e *exitCodeError) ExitCode() int { return e.code }

// processExitCode maps a task's exit code to a process exit code: 1..255 as
// is, a negative code -N (killed by signal N, as -9 for a kill) as 128+N
// like a shell does, and anything else as 1: 0, out of range, and -1, which
// the cluster records for a task with no exit code of its own (it never
// started, was lost, or a signal it died of is recorded apart), never for
// SIGHUP.
func processExitCode(code int) int {
	switch {
	case code >= 1 && code <= 255:
		return code
	case code <= -2 && code >= -127:
		return 128 - code
	}
	return 1
}
