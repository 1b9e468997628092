//go:build integration

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// execSamples is how many `true` sessions each exec row times.
func execSamples(s settings) int {
	if s.quick {
		return 30
	}
	return 200
}

// execRow is one exec measurement: sorted round trips.
type execRow struct {
	what string
	rtt  []time.Duration
}

// execSection times exec sessions of `true`: in a native task on one
// runner, 3 replicas (the WebSocket from open to the exit code, in process,
// through the leader and through a follower; and the whole `hakuriver task
// exec ID -- true` command through a follower), then the same in a
// container task next to a plain `docker exec` when the busybox test image
// is there.
func execSection(out io.Writer, parent *scope, bin string, s settings) {
	sc := parent.child("exec")
	defer sc.close()
	c := startRunnerBenchCluster(sc, bin)
	c.StartRunner("r1", harness.RunnerOptions{NoDocker: true})
	null := "NULL"
	rows, _ := execRows(sc, c, "native", api.SubmitRequest{Command: "sleep", Arguments: []string{"3600"}, ContainerName: &null, WorkDir: "/"}, s)
	sc.close()
	if problem := harness.DockerProblem(benchBusybox); problem == "" {
		dc := parent.child("exec-docker")
		defer dc.close()
		c, runner := startDockerBench(dc, bin, 3, "bexec")
		env := "bexec-" + benchSuffix()
		benchEnvironment(dc, c, benchBusybox, env)
		benchCreateTar(dc, c, env)
		req := api.SubmitRequest{Command: "sleep", Arguments: []string{"3600"}, ContainerName: &env, Targets: []string{runner}}
		drows, id := execRows(dc, c, "docker", req, s)
		direct := execRow{what: "docker: plain `docker exec <container> true` (baseline)"}
		for range min(execSamples(s), 50) {
			d, err := timeDocker("exec", "hakuriver-task-"+id, "true")
			if err != nil {
				dc.Fatalf("docker exec: %v", err)
			}
			direct.rtt = append(direct.rtt, d)
		}
		slices.Sort(direct.rtt)
		rows = append(rows, append(drows, direct)...)
	} else {
		fmt.Fprintf(out, "(no container rows: %s)\n", problem)
	}

	fmt.Fprintf(out, "Exec round trip: 3 replicas, one runner; open the session → the exit code of `true`\n")
	tw := table(out)
	fmt.Fprintf(tw, "path\tsamples\tp50 ms\tp99 ms\tmax ms\t\n")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.1f\t%.1f\t\n", r.what, len(r.rtt), msf(pctD(r.rtt, 0.5)), msf(pctD(r.rtt, 0.99)), msf(r.rtt[len(r.rtt)-1]))
	}
	tw.Flush() //nolint:errcheck // stdout
}

// execRows runs req and times exec sessions of `true` in it; it returns
// the rows and the task's ID.
func execRows(sc *scope, c *harness.Cluster, kind string, req api.SubmitRequest, s settings) ([]execRow, string) {
	leader := c.WaitLeader(harness.LeaderTimeout)
	id := c.SubmitOK(leader, req)[0]
	sc.Cleanup(func() {
		c.CallAs(context.Background(), leader, http.MethodPost, "/api/kill/"+id, c.AdminToken(), nil) //nolint:errcheck // the cluster goes next
	})
	c.WaitStatus(id, "running", 60*time.Second)
	follower := c.Followers()[0]
	n := execSamples(s)
	var rows []execRow
	for _, via := range []struct {
		name string
		i    int
	}{{"leader", leader}, {"follower", follower}} {
		base := c.Replica(via.i).API
		execOnce(sc, base, c.AdminToken(), id) // warm-up
		row := execRow{what: kind + ": WebSocket exec `true` via " + via.name}
		for range n {
			row.rtt = append(row.rtt, execOnce(sc, base, c.AdminToken(), id))
		}
		slices.Sort(row.rtt)
		rows = append(rows, row)
	}
	cli := execRow{what: kind + ": `hakuriver task exec ID -- true` via follower"}
	for range min(n, 50) {
		start := time.Now()
		r := c.CLIVia([]int{follower}, 30*time.Second, "", "task", "exec", id, "--", "true")
		if r.Code != 0 {
			sc.Fatalf("exec: %s", r)
		}
		cli.rtt = append(cli.rtt, time.Since(start))
	}
	slices.Sort(cli.rtt)
	return append(rows, cli), id
}

// execOnce runs `true` in task id through the replica at base and returns
// the time from the dial to the exit code.
func execOnce(sc *scope, base, token, id string) time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	u := "ws" + strings.TrimPrefix(base, "http") + "/api/task/" + id + "/exec?cmd=true"
	start := time.Now()
	conn, _, err := websocket.DefaultDialer.DialContext(ctx, u, http.Header{"Authorization": {"Bearer " + token}})
	if err != nil {
		sc.Fatalf("exec dial: %v", err)
	}
	defer conn.Close()
	conn.WriteMessage(websocket.BinaryMessage, api.ControlFrame(api.ExecControl{Type: api.ExecEOF})) //nolint:errcheck // the read reports it
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			sc.Fatalf("exec of true: the stream ended without an exit code: %v", err)
		}
		if len(data) == 0 || data[0] != api.ExecChanControl {
			continue
		}
		var m api.ExecControl
		if json.Unmarshal(data[1:], &m) != nil {
			continue
		}
		if m.Type == api.ExecExit && m.Code != nil && *m.Code == 0 {
			took := time.Since(start)
			conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second)) //nolint:errcheck // best effort
			return took
		}
		sc.Fatalf("exec of true: %s", errors.New(string(data[1:])))
	}
}
