package main

import (
	"bytes"
	"context"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
)

// runQuotaCLI is runCLI with the quota command.
func runQuotaCLI(tb testing.TB, args ...string) (string, string, error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	root := &cobra.Command{Use: "hakuriver", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(newQuotaCmd(addClientFlags(root)))
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

func TestCLI_Quota(t *testing.T) {
	f := newFakeHost(t)
	res := func(cores, coresMax, mem, memMax, tasks, tasksMax int64) []api.QuotaResource {
		return []api.QuotaResource{
			{Resource: "cores", Used: cores, Limit: coresMax}, {Resource: "memory_bytes", Used: mem, Limit: memMax},
			{Resource: "gpus"}, {Resource: "running_tasks", Used: tasks, Limit: tasksMax}, {Resource: "vps"},
		}
	}
	entries := []api.QuotaEntry{
		{Kind: "user", Name: "alice", Groups: []string{"lab"}, Resources: res(8, 8, 3<<30, 4<<30, 2, 0)},
		{Kind: "group", Name: "lab", Members: []string{"alice", "bob"}, Resources: res(9, 0, 0, 0, 2, 2)},
	}
	f.handle("GET /api/quota", http.StatusOK, entries)

	out, _, err := runQuotaCLI(t, "--host", f.srv.URL, "quota", "--user", "alice")
	if err != nil {
		t.Fatalf("quota: %v", err)
	}
	if r := f.last(t, "/api/quota"); r.Method != http.MethodGet || r.Query != "user=alice" {
		t.Fatalf("request = %s ?%s", r.Method, r.Query)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		lines = append(lines, strings.Join(strings.Fields(l), " "))
	}
	want := []string{
		"KIND NAME CORES MEMORY GPUS RUNNING TASKS VPS GROUPS/MEMBERS",
		"user alice 8 of 8 3.0GiB of 4.0GiB 0 of - 2 of - 0 of - lab",
		"group lab 9 of - 0B of - 0 of - 2 of 2 0 of - alice,bob",
	}
	if !reflect.DeepEqual(lines, want) {
		t.Errorf("table:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}

	out, _, err = runQuotaCLI(t, "--host", f.srv.URL, "-o", "json", "quota")
	if err != nil {
		t.Fatalf("quota json: %v", err)
	}
	if r := f.last(t, "/api/quota"); r.Query != "" {
		t.Fatalf("request without --user: ?%s", r.Query)
	}
	var got []api.QuotaEntry
	mustJSON(t, out, &got)
	if !reflect.DeepEqual(got, entries) {
		t.Fatalf("json = %+v", got)
	}

	f2 := newFakeHost(t)
	f2.handle("GET /api/quota", http.StatusOK, []api.QuotaEntry{})
	if out, _, err := runQuotaCLI(t, "--host", f2.srv.URL, "quota"); err != nil || strings.TrimSpace(out) != "No quota sets a limit." {
		t.Fatalf("no quotas: %q %v", out, err)
	}
}
