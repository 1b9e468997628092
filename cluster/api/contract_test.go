package api

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestParseMount(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want Mount
	}{
		{"/data:/data", Mount{Source: "/data", Target: "/data"}},
		{"/data:/in:ro", Mount{Source: "/data", Target: "/in", ReadOnly: true}},
		{"/data:/in:readonly", Mount{Source: "/data", Target: "/in", ReadOnly: true}},
		{"/data:/in:rw", Mount{Source: "/data", Target: "/in"}},
		{"/:/host:ro", Mount{Source: "/", Target: "/host", ReadOnly: true}},
		{"/a b/c:/d e", Mount{Source: "/a b/c", Target: "/d e"}},
	} {
		got, err := ParseMount(tc.spec)
		if err != nil || got != tc.want {
			t.Errorf("ParseMount(%q) = %+v, %v; want %+v", tc.spec, got, err, tc.want)
		}
	}
	for _, spec := range []string{
		"", "/data", "etc:/x", ":rshared", "/data:", ":/data", "/data:data", "/data:/", "/data:/x:",
		"/data:/x:rshared", "/data:/x:ro,", "/data:/x:ro,rw", "/data:/x:ro:rw", "/data/../etc:/x",
		"/data/:/x", "/data:/x/../y", "//data:/x", "/./data:/x", "/data\x00:/x", "/data:/x:z",
		"/" + strings.Repeat("a", MaxPathBytes) + ":/x",
	} {
		if m, err := ParseMount(spec); err == nil {
			t.Errorf("ParseMount(%q) = %+v, want an error", spec, m)
		}
	}
}

func TestCheckTaskPayload(t *testing.T) {
	ok := TaskPayload{
		Command: "echo", Arguments: []string{strings.Repeat("a", MaxArgBytes), strings.Repeat("b", MaxCommandBytes-MaxArgBytes-4)},
		EnvVars: map[string]string{"_A1": strings.Repeat("v", MaxEnvBytes-len("_A1="))},
		WorkDir: "/srv/x", Mounts: []string{"/a:/b:ro"},
	}
	if err := CheckTaskPayload(ok); err != nil {
		t.Fatalf("payload at the limits: %v", err)
	}
	for name, tc := range map[string]struct {
		mod      func(p *TaskPayload)
		field    string
		tooLarge bool
	}{
		"command+args": {func(p *TaskPayload) { p.Command = "echo1" }, "arguments", true},
		"one string":   {func(p *TaskPayload) { p.Arguments = []string{strings.Repeat("a", MaxArgBytes+1)} }, "arguments[0]", true},
		"env size":     {func(p *TaskPayload) { p.EnvVars["B"] = "" }, "env_vars", true},
		"env name":     {func(p *TaskPayload) { p.EnvVars = map[string]string{"A-B": "1"} }, "env_vars", false},
		"env NUL":      {func(p *TaskPayload) { p.EnvVars = map[string]string{"A": "\x00"} }, "env_vars.A", false},
		"workdir":      {func(p *TaskPayload) { p.WorkDir = "rel" }, "working_dir", false},
		"mount":        {func(p *TaskPayload) { p.Mounts = []string{"/a:/b", "x:/y"} }, "additional_mounts[1]", false},
		"NUL command":  {func(p *TaskPayload) { p.Command = "a\x00" }, "command", false},
	} {
		p := ok
		p.EnvVars = map[string]string{"_A1": ok.EnvVars["_A1"]}
		tc.mod(&p)
		var fe *FieldError
		if err := CheckTaskPayload(p); !errors.As(err, &fe) || fe.Field != tc.field || fe.TooLarge != tc.tooLarge {
			t.Errorf("%s: %v, want a FieldError on %s (too large: %v)", name, err, tc.field, tc.tooLarge)
		}
	}
}

// TestRunBodyHoldsLargestTask checks that the runner's /run body limit
// holds the largest task the host accepts, even with every byte escaped by
// the JSON encoder, plus the variables the host adds.
func TestRunBodyHoldsLargestTask(t *testing.T) {
	esc := func(n int) string { return strings.Repeat("<", n) } // "\u003c": 6 bytes each
	req := RunRequest{
		TaskID: 1<<62 - 1, TaskType: "command", Command: esc(MaxArgBytes),
		Arguments: []string{esc(MaxArgBytes), esc(MaxCommandBytes - 2*MaxArgBytes)},
		EnvVars:   map[string]string{"A": esc(MaxEnvBytes - 2), "HAKURIVER_TASK_ID": "4611686018427387903", "HAKURIVER_BATCH_ID": "4611686018427387903", "HAKURIVER_ARRAY_INDEX": "9999"},
		WorkDir:   "/" + esc(MaxPathBytes-1), StdoutPath: "/" + esc(MaxPathBytes), StderrPath: "/" + esc(MaxPathBytes),
	}
	for range MaxMounts {
		req.DockerMounts = append(req.DockerMounts, "/"+esc(MaxPathBytes-1)+":/"+esc(MaxPathBytes-1)+":ro")
	}
	if err := CheckRunRequest(req); err != nil {
		t.Fatalf("the largest valid task fails the runner's check: %v", err)
	}
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > MaxRunBodyBytes {
		t.Fatalf("the largest valid task encodes to %d bytes, over MaxRunBodyBytes %d", len(b), MaxRunBodyBytes)
	}
}
