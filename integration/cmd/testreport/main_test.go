package main

import (
	"bytes"
	"strings"
	"testing"
)

// stream is `go test -json` output of a package with a passing, a skipped
// and a failing test, and a package that failed to build.
const stream = `{"Action":"run","Package":"p/a","Test":"TestOK"}
{"Action":"output","Package":"p/a","Test":"TestOK","Output":"=== RUN   TestOK\n"}
{"Action":"pass","Package":"p/a","Test":"TestOK","Elapsed":12.5}
{"Action":"output","Package":"p/a","Test":"TestSkip","Output":"=== RUN   TestSkip\n"}
{"Action":"output","Package":"p/a","Test":"TestSkip","Output":"--- SKIP: TestSkip (0.00s)\n"}
{"Action":"output","Package":"p/a","Test":"TestSkip","Output":"    a_test.go:9: skipping: no GPU here\n"}
{"Action":"skip","Package":"p/a","Test":"TestSkip"}
{"Action":"output","Package":"p/a","Test":"TestBad","Output":"    a_test.go:12: want 1, got 2\n"}
{"Action":"pass","Package":"p/a","Test":"TestBad/sub","Elapsed":30}
{"Action":"fail","Package":"p/a","Test":"TestBad","Elapsed":31.25}
{"Action":"output","Package":"p/b","Output":"?   \tp/b\t[no test files]\n"}
{"Action":"skip","Package":"p/b"}
{"Action":"output","Package":"p/a","Output":"FAIL\n"}
{"Action":"output","Package":"p/a","Output":"FAIL\tp/a\t0.1s\n"}
{"Action":"fail","Package":"p/a"}
`

func TestReportListsSkipsAndFailures(t *testing.T) {
	var out bytes.Buffer
	r := &report{out: &out, buf: map[string][]string{}}
	if err := r.read(strings.NewReader(stream)); err != nil {
		t.Fatal(err)
	}
	code := r.summary(-1)
	got := out.String()
	for _, want := range []string{"FAIL\tp/a\t0.1s", "--- FAIL: TestBad (p/a)", "want 1, got 2",
		"1 skipped tests", "SKIP p/a TestSkip: a_test.go:9: skipping: no GPU here", "1 failed tests",
		"slowest 2 tests\n     31.2s p/a TestBad\n     12.5s p/a TestOK\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "TestOK (") || strings.Contains(got, "TestBad/sub") {
		t.Errorf("a passing test or a subtest is reported beyond the timings:\n%s", got)
	}
	if code != 1 {
		t.Errorf("exit code %d with a failure, want 1", code)
	}
}

func TestReportMaxSkips(t *testing.T) {
	skipOnly := strings.Join(strings.Split(stream, "\n")[3:7], "\n")
	for _, tt := range []struct {
		max, code int
	}{{-1, 0}, {1, 0}, {0, 1}} {
		var out bytes.Buffer
		r := &report{out: &out, buf: map[string][]string{}}
		if err := r.read(strings.NewReader(skipOnly)); err != nil {
			t.Fatal(err)
		}
		if code := r.summary(tt.max); code != tt.code {
			t.Errorf("-max-skips %d with one skip: exit %d, want %d\n%s", tt.max, code, tt.code, out.String())
		}
	}
}
