package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestLocalSweep runs real processes: sequentially the combinations run in
// hakurun's order; with --parallel 0 all run and one failure fails the
// sweep; an empty span is an error.
func TestLocalSweep(t *testing.T) {
	file := filepath.Join(t.TempDir(), "runs")
	var out, errOut bytes.Buffer
	script := `echo "$0 $1" >> "$SWEEP_FILE"`
	t.Setenv("SWEEP_FILE", file)
	if err := runLocalSweep(context.Background(), []string{"sh", "-c", script, "span:[a,b]", "span:{1..2}"}, 1, &out, &errOut); err != nil {
		t.Fatalf("sweep: %v\n%s", err, errOut.String())
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), "a 1\na 2\nb 1\nb 2\n"; got != want {
		t.Errorf("runs %q, want %q", got, want)
	}
	if !strings.Contains(errOut.String(), "Task 4/4: sh -c") {
		t.Errorf("log has no \"Task 4/4\" line:\n%s", errOut.String())
	}
	errOut.Reset()
	err = runLocalSweep(context.Background(), []string{"sh", "-c", "exit $0", "span:{0..3}"}, 0, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "3 of 4 runs failed") {
		t.Errorf("parallel sweep with 3 failures: %v", err)
	}
	if err := runLocalSweep(context.Background(), []string{"true", "span:[]"}, 1, &out, &errOut); err == nil {
		t.Error("an empty span ran")
	}
}

// TestClusterSweepErrors: a malformed or empty span is refused for what
// it is, before any call, without the cluster's task limit in the
// message; only too many combinations mention the limit.
func TestClusterSweepErrors(t *testing.T) {
	f := newFakeHost(t)
	for _, tc := range []struct {
		args       []string
		want, absn string
	}{
		{[]string{"echo", "span:{1..b}"}, `argument "span:{1..b}": want span:{START..END} with integers`, "at most"},
		{[]string{"echo", "span:[]"}, "no argument combinations generated", "at most"},
		{[]string{"echo", "span:{1..101}", "span:{1..100}"}, "a cluster sweep creates at most 10000 tasks", ""},
	} {
		root := &cobra.Command{Use: "hakuriver", SilenceUsage: true, SilenceErrors: true}
		root.AddCommand(newSweepCmd(addClientFlags(root)))
		root.SetOut(io.Discard)
		root.SetErr(io.Discard)
		root.SetArgs(append([]string{"--host", f.srv.URL, "sweep", "--"}, tc.args...))
		err := root.ExecuteContext(context.Background())
		if err == nil || !strings.Contains(err.Error(), tc.want) || tc.absn != "" && strings.Contains(err.Error(), tc.absn) {
			t.Errorf("sweep %q: %v, want an error with %q (and not %q)", tc.args, err, tc.want, tc.absn)
		}
	}
	if r := f.requests(); len(r) != 0 {
		t.Errorf("refused sweeps called the host: %+v", r)
	}
}
