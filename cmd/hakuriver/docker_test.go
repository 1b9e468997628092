package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/spf13/cobra"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
)

// runDockerCLI runs "hakuriver ARGS" with the docker commands and stdin.
func runDockerCLI(tb testing.TB, stdin string, args ...string) (string, string, error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	root := &cobra.Command{Use: "hakuriver", SilenceUsage: true, SilenceErrors: true}
	g := addClientFlags(root)
	root.AddCommand(newDockerCmd(g))
	var out, errOut bytes.Buffer
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

func TestCLI_DockerCommands(t *testing.T) {
	f := newFakeHost(t)
	f.handle("GET /api/docker/host/containers", http.StatusOK, []api.DockerContainer{
		{ID: "abc123", Name: "torch", Image: "python:3.12", Status: "Up 2 minutes", State: "running", Replica: "h2"},
	})
	f.handle("POST /api/docker/host/create", http.StatusCreated, api.DockerMessage{Message: "Container 'torch' created or already exists.", Replica: "h2"})
	f.handle("POST /api/docker/host/stop/torch", http.StatusOK, api.DockerMessage{Message: "Container 'torch' stopped.", Replica: "h2"})
	f.handle("POST /api/docker/host/start/nosuch", http.StatusNotFound, api.ErrorResponse{Error: "environment container \"nosuch\" does not exist on this replica"})
	f.handle("GET /api/docker/list", http.StatusOK, map[string]api.TarballSet{
		"torch": {LatestTimestamp: 300, LatestTarball: "torch-300.tar", LatestSize: 3 << 20, AllVersions: []api.TarballVersion{
			{Timestamp: 300, Tarball: "torch-300.tar", Size: 3 << 20}, {Timestamp: 200, Tarball: "torch-200.tar", Size: 2 << 20}}},
	})
	f.mux.HandleFunc("POST /api/docker/create_tar/torch", func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.Header.Get("Accept"), api.NDJSONType) {
			t.Errorf("create_tar without the progress stream: Accept %q", r.Header.Get("Accept"))
		}
		w.Header().Set("Content-Type", api.NDJSONType)
		enc := json.NewEncoder(w)
		for _, p := range []api.TarProgress{{Type: "progress", Stage: "commit"}, {Type: "progress", Stage: "save", Bytes: 1, Total: 2},
			{Type: "progress", Stage: "done", Bytes: 2, Total: 2},
			{Type: "result", Result: &api.CreateTarResponse{Message: "Container tarball created/refreshed successfully.", TarballPath: "/s/c/torch-400.tar", Timestamp: 400, Size: 2, Replica: "h2"}}} {
			enc.Encode(p) //nolint:errcheck // the client reports a short stream
		}
	})
	host := []string{"--host", f.srv.URL}

	out, _, err := runDockerCLI(t, "", append(host, "docker", "list")...)
	if err != nil || !strings.Contains(out, "torch") || !strings.Contains(out, "h2") || !strings.Contains(out, "REPLICA") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	out, _, err = runDockerCLI(t, "", append(host, "docker", "create-container", "python:3.12", "torch")...)
	if err != nil || strings.TrimSpace(out) != "Container 'torch' created or already exists. (replica h2)" {
		t.Fatalf("create: %v %q", err, out)
	}
	if got := string(f.last(t, "/api/docker/host/create").Body); !strings.Contains(got, `"image_name":"python:3.12"`) || !strings.Contains(got, `"container_name":"torch"`) {
		t.Fatalf("create body %s", got)
	}
	out, _, err = runDockerCLI(t, "", append(host, "-o", "json", "docker", "stop", "torch")...)
	var msg api.DockerMessage
	mustJSON(t, out, &msg)
	if err != nil || msg.Replica != "h2" {
		t.Fatalf("stop json: %v %+v", err, msg)
	}
	_, _, err = runDockerCLI(t, "", append(host, "docker", "start", "nosuch")...)
	if api.StatusCode(err) != http.StatusNotFound || !strings.Contains(err.Error(), "nosuch") {
		t.Fatalf("start unknown: %v", err)
	}
	out, _, err = runDockerCLI(t, "", append(host, "docker", "list-tars")...)
	if err != nil || !strings.Contains(out, "torch-300.tar") || strings.Contains(out, "torch-200.tar") || !strings.Contains(out, "3.0MiB") {
		t.Fatalf("list-tars: %v\n%s", err, out)
	}
	out, _, err = runDockerCLI(t, "", append(host, "docker", "list-tars", "--all")...)
	if err != nil || !strings.Contains(out, "torch-200.tar") {
		t.Fatalf("list-tars --all: %v\n%s", err, out)
	}
	out, errOut, err := runDockerCLI(t, "", append(host, "docker", "create-tar", "torch")...)
	if err != nil || !strings.Contains(out, "/s/c/torch-400.tar") || !strings.Contains(out, "version 400") {
		t.Fatalf("create-tar: %v\n%s", err, out)
	}
	for _, stage := range []string{"commit", "save", "done"} {
		if !strings.Contains(errOut, "create-tar torch: "+stage) {
			t.Errorf("no %s progress on stderr:\n%s", stage, errOut)
		}
	}
}

// TestCLI_DockerShellScripted drives "docker shell" with a script on
// standard input against a fake terminal that echoes input and ends the
// shell at Ctrl-D with exit code 3.
func TestCLI_DockerShellScripted(t *testing.T) {
	f := newFakeHost(t)
	f.mux.HandleFunc("GET /api/docker/host/containers/{name}/terminal", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("name") == "missing" {
			reply(w, http.StatusBadRequest, api.ErrorResponse{Error: "environment name \"missing\": bad"})
			return
		}
		if got := r.Header.Get("Authorization"); got != "Bearer hkr_shell-test" {
			reply(w, http.StatusUnauthorized, api.ErrorResponse{Error: "authentication required, got " + got})
			return
		}
		conn, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		conn.WriteJSON(api.TerminalMessage{Type: "output", Data: "Terminal connected.\r\n"}) //nolint:errcheck // test server
		for {
			var m api.TerminalMessage
			if err := conn.ReadJSON(&m); err != nil {
				return
			}
			if m.Type != "input" {
				continue
			}
			if strings.Contains(m.Data, "\x04") {
				code := 3
				conn.WriteJSON(api.TerminalMessage{Type: "exit", Code: &code})                                            //nolint:errcheck // test server
				conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")) //nolint:errcheck // test server
				return
			}
			conn.WriteJSON(api.TerminalMessage{Type: "output", Data: "echo:" + m.Data}) //nolint:errcheck // test server
		}
	})
	// The account's token goes with the WebSocket upgrade.
	out, _, err := runDockerCLI(t, "touch /x\n", "--host", f.srv.URL, "--token", "hkr_shell-test", "docker", "shell", "torch")
	var ec *exitCodeError
	if !errors.As(err, &ec) || ec.ExitCode() != 3 {
		t.Fatalf("shell: %v, want exit code 3", err)
	}
	if !strings.Contains(out, "Terminal connected.") || !strings.Contains(out, "echo:touch /x\n") {
		t.Fatalf("shell output %q", out)
	}
	_, _, err = runDockerCLI(t, "", "--host", f.srv.URL, "docker", "shell", "missing")
	if api.StatusCode(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("shell of a bad name: %v", err)
	}
}
