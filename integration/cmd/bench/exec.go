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

// execSection starts 3 replicas and one native runner, runs a native task
// and times exec sessions of `true` in it: the WebSocket from open to the
// exit code (in process), through the leader and through a follower, and
// the whole `hakuriver task exec ID -- true` command through a follower.
func execSection(out io.Writer, parent *scope, bin string, s settings) {
	sc := parent.child("exec")
	defer sc.close()
	c := startRunnerBenchCluster(sc, bin)
	c.StartRunner("r1", harness.RunnerOptions{NoDocker: true})
	null := "NULL"
	leader := c.WaitLeader(harness.LeaderTimeout)
	ids := c.SubmitOK(leader, api.SubmitRequest{Command: "sleep", Arguments: []string{"3600"}, ContainerName: &null, WorkDir: "/"})
	id := ids[0]
	defer c.CallAs(context.Background(), leader, http.MethodPost, "/api/kill/"+id, c.AdminToken(), nil) //nolint:errcheck // the cluster goes next
	c.WaitStatus(id, "running", 30*time.Second)
	follower := c.Followers()[0]
	n := execSamples(s)
	var rows []execRow
	for _, via := range []struct {
		name string
		i    int
	}{{"leader", leader}, {"follower", follower}} {
		base := c.Replica(via.i).API
		execOnce(sc, base, c.AdminToken(), id) // warm-up
		row := execRow{what: "WebSocket exec `true` via " + via.name}
		for range n {
			row.rtt = append(row.rtt, execOnce(sc, base, c.AdminToken(), id))
		}
		slices.Sort(row.rtt)
		rows = append(rows, row)
	}
	cli := execRow{what: "`hakuriver task exec ID -- true` via follower"}
	for range min(n, 50) {
		start := time.Now()
		r := c.CLIVia([]int{follower}, 30*time.Second, "", "task", "exec", id, "--", "true")
		if r.Code != 0 {
			sc.Fatalf("exec: %s", r)
		}
		cli.rtt = append(cli.rtt, time.Since(start))
	}
	slices.Sort(cli.rtt)
	rows = append(rows, cli)

	fmt.Fprintf(out, "Exec round trip: a native task on one runner, 3 replicas; open the session → the exit code of `true`\n")
	tw := table(out)
	fmt.Fprintf(tw, "path\tsamples\tp50 ms\tp99 ms\tmax ms\t\n")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.1f\t%.1f\t\n", r.what, len(r.rtt), msf(pctD(r.rtt, 0.5)), msf(pctD(r.rtt, 0.99)), msf(r.rtt[len(r.rtt)-1]))
	}
	tw.Flush() //nolint:errcheck // stdout
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
