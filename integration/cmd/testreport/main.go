// Command testreport reads `go test -json` on stdin and prints what a person
// needs from a whole-suite run: one line per package, the full output of
// every failed test, at the end every skipped test with the reason it
// gave, and the slowest top-level tests (where the suite's time goes). It exits non-zero when a test or a package failed (or its build), so
// `make test` can pipe into it without losing the verdict.
//
//	go test -json ./... | testreport [-max-skips N]
//
// With -max-skips N (N >= 0) more than N skipped tests is a failure too;
// the default, -1, only reports them.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action     string
	Package    string
	Test       string
	Output     string
	ImportPath string
	Elapsed    float64 // seconds, on a test's pass/fail/skip
}

// timing is one finished top-level test and how long it ran.
type timing struct {
	name    string
	seconds float64
}

// slowestShown is how many of the slowest top-level tests the summary lists.
const slowestShown = 15

// skip is one skipped test and the reason it printed.
type skip struct {
	pkg, test, reason string
}

// report accumulates a run.
type report struct {
	out     io.Writer
	buf     map[string][]string // output so far per package/test
	skips   []skip
	failed  []string
	pkgFail bool
	timings []timing
}

func main() {
	maxSkips := flag.Int("max-skips", -1, "fail when more tests than this were skipped (-1: no limit)")
	flag.Parse()
	r := &report{out: os.Stdout, buf: map[string][]string{}}
	if err := r.read(os.Stdin); err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		os.Exit(2)
	}
	os.Exit(r.summary(*maxSkips))
}

// read consumes the event stream; lines that are not JSON (a build error
// printed by an older go) are echoed as they are.
func (r *report) read(in io.Reader) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var ev event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &ev) != nil {
			fmt.Fprintln(r.out, string(line))
			continue
		}
		r.handle(ev)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read test events: %w", err)
	}
	return nil
}

func (r *report) handle(ev event) {
	key := ev.Package + " " + ev.Test
	switch {
	case ev.Action == "build-output":
		fmt.Fprint(r.out, ev.Output)
	case ev.Action == "build-fail":
		r.pkgFail = true
	case ev.Test == "" && ev.Action == "output":
		if o := strings.TrimSpace(ev.Output); o != "PASS" && o != "FAIL" && !strings.HasPrefix(o, "=== ") {
			fmt.Fprint(r.out, ev.Output)
		}
	case ev.Test == "" && ev.Action == "fail":
		r.pkgFail = true
	case ev.Test == "":
		// a package's own pass or skip ("no test files")
	case ev.Action == "output":
		r.buf[key] = append(r.buf[key], ev.Output)
	default:
		r.finish(ev, key)
	}
}

// finish handles a test's run ending: it prints a failure, records a skip's
// reason and a top-level test's time.
func (r *report) finish(ev event, key string) {
	if (ev.Action == "pass" || ev.Action == "fail") && !strings.Contains(ev.Test, "/") {
		r.timings = append(r.timings, timing{name: strings.TrimPrefix(ev.Package, "github.com/hakuriver/hakuriver-ha/") + " " + ev.Test, seconds: ev.Elapsed})
	}
	switch ev.Action {
	case "fail":
		r.failed = append(r.failed, ev.Package+" "+ev.Test)
		fmt.Fprintf(r.out, "--- FAIL: %s (%s)\n%s", ev.Test, ev.Package, strings.Join(r.buf[key], ""))
		delete(r.buf, key)
	case "skip":
		r.skips = append(r.skips, skip{pkg: ev.Package, test: ev.Test, reason: skipReason(r.buf[key])})
		delete(r.buf, key)
	case "pass":
		delete(r.buf, key)
	}
}

// skipReason picks the message lines out of a skipped test's output.
func skipReason(lines []string) string {
	var out []string
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- SKIP") {
			continue
		}
		out = append(out, t)
	}
	if len(out) == 0 {
		return "(no reason given)"
	}
	return strings.Join(out, " / ")
}

// summary prints the skips and failures and returns the exit code.
func (r *report) summary(maxSkips int) int {
	sort.Slice(r.skips, func(i, j int) bool {
		return r.skips[i].pkg+r.skips[i].test < r.skips[j].pkg+r.skips[j].test
	})
	sort.SliceStable(r.timings, func(i, j int) bool { return r.timings[i].seconds > r.timings[j].seconds })
	if n := min(len(r.timings), slowestShown); n > 0 {
		fmt.Fprintf(r.out, "\nslowest %d tests\n", n)
		for _, t := range r.timings[:n] {
			fmt.Fprintf(r.out, "  %7.1fs %s\n", t.seconds, t.name)
		}
	}
	fmt.Fprintf(r.out, "\n%d skipped tests\n", len(r.skips))
	for _, s := range r.skips {
		fmt.Fprintf(r.out, "  SKIP %s %s: %s\n", strings.TrimPrefix(s.pkg, "github.com/hakuriver/hakuriver-ha/"), s.test, s.reason)
	}
	code := 0
	if len(r.failed) > 0 || r.pkgFail {
		fmt.Fprintf(r.out, "%d failed tests\n", len(r.failed))
		for _, f := range r.failed {
			fmt.Fprintf(r.out, "  FAIL %s\n", f)
		}
		code = 1
	}
	if maxSkips >= 0 && len(r.skips) > maxSkips {
		fmt.Fprintf(r.out, "%d tests skipped, at most %d allowed here\n", len(r.skips), maxSkips)
		code = 1
	}
	return code
}
