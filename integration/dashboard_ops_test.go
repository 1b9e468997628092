//go:build integration

package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
)

// opsPage is one of the operator pages and what the test reads from it:
// facts are JavaScript expressions whose values must be the same on every
// replica (they are functions of the replicated state).
type opsPage struct {
	name, path, ready string
	facts             map[string]string
}

// rowsText is the text of the cells of the given column of a table's rows.
func rowsText(table string, col int) string {
	return fmt.Sprintf(`Array.from(document.querySelectorAll(%q)).map(r => r.cells[%d].innerText.trim()).join("|")`, table+" tbody tr", col)
}

// cellsText is the text of every cell of a table's rows: cells joined by
// ",", rows by "|".
func cellsText(table string) string {
	return fmt.Sprintf(`Array.from(document.querySelectorAll(%q)).map(r => Array.from(r.cells).map(c => c.innerText.trim()).join(",")).join("|")`, table+" tbody tr")
}

// TestDashboardOpsPages opens every operator page (overview, nodes, a node,
// queue, doctor, audit) on the leader and on a follower, checks that each
// renders without console errors, that both replicas show the same data,
// and saves a screenshot of each (and of the overview at phone width). The
// runners report two GPUs each through the fake nvidia-smi: the nodes and
// node pages show them with their live figures.
func TestDashboardOpsPages(t *testing.T) {
	start := time.Now()
	d := startDevUI(t, withFakeGPUs())
	t.Logf("dev cluster up in %v", time.Since(start).Round(time.Millisecond))
	// On dev-runner-1 (2 cores) one task runs with one core, and one that
	// wants both waits behind it.
	var wait, run api.SubmitResponse
	one, two := 1, 2
	target := []string{"dev-runner-1"}
	d.post(t, 0, "/api/submit", api.SubmitRequest{Command: "sh", Arguments: []string{"-c", "sleep 300 # a long command line that must wrap rather than scroll the page sideways: " + strings.Repeat("x", 200)}, RequiredCores: &one, Targets: target}, &run)
	d.post(t, 0, "/api/submit", api.SubmitRequest{Command: "sleep", Arguments: []string{"300"}, RequiredCores: &two, Targets: target}, &wait)
	waitID, runID := wait.TaskIDs[0], run.TaskIDs[0]
	// Killed before the cluster stops, which is then quick.
	t.Cleanup(func() {
		start := time.Now()
		for _, id := range []string{runID, waitID} {
			d.post(t, 0, "/api/kill/"+id, nil, nil)
		}
		t.Logf("tasks killed in %v", time.Since(start).Round(time.Millisecond))
	})
	// The running task is placed before the pages are compared.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		var tk struct {
			Status string `json:"status"`
		}
		d.get(t, 0, "/api/status/"+runID, &tk)
		if tk.Status == "running" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s not running in 30s: %s", runID, tk.Status)
		}
	}

	t.Logf("task %s running after %v", runID, time.Since(start).Round(time.Millisecond))
	pages := []opsPage{
		{"overview", "/ui/", "#overview-replicas tbody tr", map[string]string{
			"replicas":  rowsText("#overview-replicas", 0),
			"leaders":   `Array.from(document.querySelectorAll("#overview-replicas tbody tr")).filter(r => r.cells[1].innerText.includes("leader")).length + ""`,
			"runners":   `document.querySelector("#overview-runners").innerText`,
			"tasks":     rowsText("#overview-tasks", 1),
			"total":     `document.querySelector("#overview-tasks-total").innerText`,
			"queue":     `document.querySelector("#overview-queue").innerText`,
			"cores":     `document.querySelector("#overview-cores").innerText`,
			"memory":    `document.querySelector("#overview-memory").innerText`,
			"doctorset": `document.querySelector("#overview-doctor .hr-status") ? "yes" : "no"`,
		}},
		{"nodes", "/ui/nodes", "#nodes-table tbody tr", map[string]string{
			"names":  rowsText("#nodes-table", 0),
			"states": rowsText("#nodes-table", 1),
			"cores":  rowsText("#nodes-table", 2),
			"gpus":   rowsText("#nodes-table", 6),
			"chart":  `document.querySelectorAll("#nodes canvas").length + ""`,
		}},
		{"node", "/ui/node/dev-runner-1", "#node-gpus tbody tr", map[string]string{
			"gpus":  cellsText("#node-gpus"),
			"cores": `document.querySelector("#node-cores").innerText`,
			"tasks": `document.querySelector("#node-tasks") ? ` + rowsText("#node-tasks", 0) + ` : document.querySelector("#node-no-tasks").innerText`,
		}},
		{"queue", "/ui/queue", "#queue-table tbody tr", map[string]string{
			"ids":     rowsText("#queue-table", 1),
			"reasons": rowsText("#queue-table", 5),
			"length":  `document.querySelector("#queue-length").innerText`,
		}},
		{"doctor", "/ui/doctor", "#doctor-checks tbody tr", map[string]string{
			// The checks are this replica's: compare their names only.
			"first": `document.querySelector("#doctor-checks tbody tr").dataset.status`,
		}},
		{"audit", "/ui/audit", "#audit-table tbody tr", map[string]string{
			"actions": rowsText("#audit-table", 4),
			"users":   rowsText("#audit-table", 2),
		}},
	}
	leader, follower := d.leader(t), d.follower(t)
	seen := map[string]map[string]string{}
	// Both browsers sign in first: a sign-in is audited, and the audit
	// page must read the same on both replicas.
	browsers := map[int]context.Context{}
	for _, ri := range []int{leader, follower} {
		start := time.Now()
		ctx := newBrowser(t)
		if err := login(ctx, d.URLs[ri], d.Token); err != nil {
			t.Fatalf("replica %d: login: %v", ri, err)
		}
		browsers[ri] = ctx
		t.Logf("replica %d: browser started and signed in in %v", ri, time.Since(start).Round(time.Millisecond))
	}
	for _, ri := range []int{leader, follower} {
		role := "leader"
		if ri == follower {
			role = "follower"
		}
		ctx := browsers[ri]
		for _, p := range pages {
			start := time.Now()
			if err := goTo(ctx, p.path, p.ready); err != nil {
				shot(t, ctx, p.name+"-"+role+"-failed")
				t.Fatalf("%s %s: %v", role, p.path, err)
			}
			// The page fills in as its reads and the feed's first events
			// land: read the facts until two reads agree and none is
			// still loading ("…").
			var facts map[string]string
			for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(250 * time.Millisecond) {
				now := map[string]string{}
				loading := false
				for k, expr := range p.facts {
					v, err := eval[string](ctx, expr)
					if err != nil {
						t.Fatalf("%s %s: %s: %v", role, p.path, k, err)
					}
					now[k] = v
					loading = loading || strings.Contains(v, "…")
				}
				if !loading && equalFacts(now, facts) {
					break
				}
				facts = now
				if time.Now().After(deadline) {
					t.Errorf("%s %s: facts still changing or loading after 15s: %v", role, p.path, facts)
					break
				}
			}
			key := p.name
			if prev, ok := seen[key]; ok {
				for k, v := range facts {
					if prev[k] != v {
						t.Errorf("%s differs between the leader and a follower: %s: %q vs %q", p.path, k, prev[k], v)
					}
				}
			} else {
				seen[key] = facts
			}
			// No page scrolls sideways, long commands included.
			if wide, err := eval[bool](ctx, `document.documentElement.scrollWidth > document.documentElement.clientWidth + 1`); err != nil || wide {
				t.Errorf("%s %s scrolls horizontally (err %v)", role, p.path, err)
			}
			shot(t, ctx, p.name+"-"+role)
			noConsoleErrors(t, ctx)
			t.Logf("%s %s checked in %v", role, p.path, time.Since(start).Round(time.Millisecond))
		}
		if ri == leader {
			// The overview at phone width, for the record.
			if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844)); err != nil {
				t.Fatal(err)
			}
			if err := goTo(ctx, "/ui/", "#overview-replicas tbody tr"); err != nil {
				t.Fatal(err)
			}
			time.Sleep(500 * time.Millisecond)
			if wide, err := eval[bool](ctx, `document.documentElement.scrollWidth > document.documentElement.clientWidth + 1`); err != nil || wide {
				t.Errorf("overview at phone width scrolls horizontally (err %v)", err)
			}
			shot(t, ctx, "overview-phone")
			noConsoleErrors(t, ctx)
		}
	}
	ov := seen["overview"]
	if ov["replicas"] != "dev-1|dev-2|dev-3" || ov["leaders"] != "1" {
		t.Errorf("overview replicas %q leaders %q", ov["replicas"], ov["leaders"])
	}
	if !strings.HasPrefix(ov["runners"], "2") || !strings.Contains(ov["queue"], "1 pending") || ov["doctorset"] != "yes" {
		t.Errorf("overview: runners %q queue %q doctor %q", ov["runners"], ov["queue"], ov["doctorset"])
	}
	if n := seen["nodes"]; n["names"] != "dev-runner-1|dev-runner-2" || !strings.Contains(n["states"], "mixed") || n["chart"] != "1" ||
		n["gpus"] != "0 / 2|0 / 2" {
		t.Errorf("nodes: %v", n)
	}
	// The fake nvidia-smi's figures (runner/resources/testdata/nvidia-smi):
	// ID, name, utilisation, memory used / total, temperature, power, held.
	wantGPUs := "0,NVIDIA GeForce RTX 4090,37%,1.8GiB / 24.0GiB,54°C,85 W,|1,Tesla K80,0%,4.0MiB / 11.2GiB,38°C,-,"
	if got := seen["node"]["gpus"]; got != wantGPUs {
		t.Errorf("node page GPUs:\n got %q\nwant %q", got, wantGPUs)
	}
	if q := seen["queue"]; q["ids"] != waitID || !strings.Contains(q["reasons"], "core") {
		t.Errorf("queue: %v (want task %s waiting for cores)", q, waitID)
	}
	if a := seen["audit"]; !strings.Contains(a["actions"], "submit") || !strings.Contains(a["users"], "admin") {
		t.Errorf("audit: %v", a)
	}
	if dir := os.Getenv("HAKURIVER_UI_SHOTS"); dir != "" {
		t.Logf("screenshots also in %s", filepath.Clean(dir))
	}
	manyTabs(t, d, follower)
}

// manyTabs opens seven overviews of one replica in one browser: all load
// and follow the change feed. A browser keeps six connections per host;
// with a stream per tab the seventh never loaded (feedworker.js shares one).
func manyTabs(t *testing.T, d *devUI, ri int) {
	const n = 7
	start := time.Now()
	ctx := newBrowserFor(t, 4*time.Minute) // seven page loads on a busy machine
	base := d.URLs[ri]
	if err := login(ctx, base, d.Token); err != nil {
		t.Fatalf("login: %v", err)
	}
	tabs := []context.Context{ctx}
	for len(tabs) < n {
		tab, _ := chromedp.NewContext(ctx) // closed with the browser
		if err := chromedp.Do(tab); err != nil {
			t.Fatalf("new tab: %v", err)
		}
		if err := open(tab, base, "/ui/", "#overview-tasks-total"); err != nil {
			t.Fatalf("tab %d of one browser: %v", len(tabs)+1, err)
		}
		tabs = append(tabs, tab)
	}
	if err := goTo(ctx, "/ui/", "#overview-tasks-total"); err != nil {
		t.Fatal(err)
	}
	var total int
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		s, err := eval[string](ctx, `document.querySelector("#overview-tasks-total").innerText`)
		if _, perr := fmt.Sscan(s, &total); err == nil && perr == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("overview task total %q: %v", s, err)
		}
	}
	d.post(t, ri, "/api/submit", api.SubmitRequest{Command: "true", ContainerName: ptr("NULL")}, nil)
	want := fmt.Sprint(total + 1)
	for i, tab := range tabs {
		if got, err := waitText(tab, "#overview-tasks-total", want); err != nil {
			t.Errorf("tab %d does not follow the feed: %v (%q)", i+1, err, got)
		}
		if shared, err := eval[bool](tab, `!!(HR.app.feedConn && HR.app.feedConn.port)`); err != nil || !shared {
			t.Errorf("tab %d: no shared feed (%v)", i+1, err)
		}
		if live, err := eval[bool](tab, `HR.app.live`); err != nil || !live {
			t.Errorf("tab %d: live updates off (%v)", i+1, err)
		}
	}
	noConsoleErrors(t, ctx)
	t.Logf("%d tabs of one browser on one replica loaded and followed the feed in %v", n, time.Since(start).Round(time.Millisecond))
}

// TestDashboardDrain drains a runner from its node page on a follower: the
// page shows it drained, the CLI's node list too; undrain brings it back.
func TestDashboardDrain(t *testing.T) {
	d := startDevUI(t)
	f := d.follower(t)
	ctx := newBrowser(t)
	if err := login(ctx, d.URLs[f], d.Token); err != nil {
		t.Fatal(err)
	}
	if err := open(ctx, d.URLs[f], "/ui/node/dev-runner-2", "#node-drain"); err != nil {
		t.Fatal(err)
	}
	if _, err := waitText(ctx, "#node-state", "idle"); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID("node-drain-reason-input"), "new disk"), chromedp.Click(chromedp.ID("node-drain"))); err != nil {
		t.Fatal(err)
	}
	if _, err := waitText(ctx, "#node-state", "drained"); err != nil {
		shot(t, ctx, "drain-failed")
		t.Fatal(err)
	}
	if _, err := waitText(ctx, "#node-drain-reason", "new disk"); err != nil {
		t.Fatal(err)
	}
	// Who drained it: the dev cluster's admin account.
	if _, err := waitText(ctx, "#node-drained-by", "drained by "); err != nil {
		t.Fatal(err)
	}
	if err := open(ctx, d.URLs[f], "/ui/nodes", `#nodes-table tr[data-node="dev-runner-2"] .node-drained-by`); err != nil {
		t.Fatal(err)
	}
	if _, err := waitText(ctx, `#nodes-table tr[data-node="dev-runner-2"] .node-drain-reason`, "new disk"); err != nil {
		t.Fatal(err)
	}
	if err := open(ctx, d.URLs[f], "/ui/node/dev-runner-2", "#node-undrain"); err != nil {
		t.Fatal(err)
	}
	var nodes []struct {
		Hostname    string `json:"hostname"`
		DrainReason string `json:"drain_reason"`
	}
	d.get(t, d.leader(t), "/api/nodes", &nodes)
	for _, n := range nodes {
		if n.Hostname == "dev-runner-2" && n.DrainReason != "new disk" {
			t.Fatalf("the API shows drain reason %q", n.DrainReason)
		}
	}
	shot(t, ctx, "node-drained")
	out := d.cli(t, "node", "list")
	if !nodeLineHas(out, "dev-runner-2", "drain") || nodeLineHas(out, "dev-runner-1", "drain") {
		t.Fatalf("node list after a drain from the dashboard:\n%s", out)
	}
	// Undrain, then from the nodes list the state is back.
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.ID("node-undrain")), chromedp.Click(chromedp.ID("node-undrain"))); err != nil {
		t.Fatal(err)
	}
	if _, err := waitText(ctx, "#node-state", "idle"); err != nil {
		t.Fatal(err)
	}
	if err := open(ctx, d.URLs[f], "/ui/nodes", `#nodes-table tr[data-node="dev-runner-2"]`); err != nil {
		t.Fatal(err)
	}
	if _, err := waitText(ctx, `#nodes-table tr[data-node="dev-runner-2"] .node-state`, "idle"); err != nil {
		t.Fatal(err)
	}
	if out := d.cli(t, "node", "list"); nodeLineHas(out, "dev-runner-2", "drain") {
		t.Fatalf("node list after undrain:\n%s", out)
	}
	noConsoleErrors(t, ctx)
}

// equalFacts compares two fact maps.
func equalFacts(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// nodeLineHas tells whether the line of node in a table output contains
// word.
func nodeLineHas(out, node, word string) bool {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), node+" ") {
			return strings.Contains(strings.ToLower(l), word)
		}
	}
	return false
}
