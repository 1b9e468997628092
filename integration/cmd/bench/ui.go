//go:build integration

package main

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// uiResult is the ui section's outcome.
type uiResult struct {
	tasks       int
	submitTime  time.Duration
	cold, warm  []time.Duration // overview first render, new browser / reload
	tasksCold   time.Duration   // tasks page first render (when dash2's page exists)
	updateBytes int64           // bytes the overview fetched for one change
	updateReqs  int
	cpuBase     float64 // leader CPU % of one core, no dashboard
	cpuTabs     float64 // the same with uiTabs overview tabs open
	cpuWindow   time.Duration
	tabs        int           // tabs rendered before the CPU measure
	live        int           // of those, tabs that showed every submit of the measure
	tabRender   time.Duration // slowest first render of a tab
	// leaderChanges counts CPU measures spoilt by a leader change.
	leaderChanges int
	err           string
}

const (
	// uiTabs is the number of dashboards open during the CPU measure,
	// spread over uiBrowsers Chromium processes: tabs of one site in one
	// browser share a renderer process, and ten of them in one timed out
	// on 2 cores.
	uiTabs     = 10
	uiBrowsers = 5
	// uiTabLimit bounds opening one tab and waiting for its first render.
	uiTabLimit = 3 * time.Minute
)

// uiSection measures the dashboard with many tasks in the state: time to
// first render of the overview in headless Chromium (new browser, then a
// reload with a warm cache), the bytes the overview fetches when one task
// is submitted, and the leader's CPU with uiTabs overviews open.
func uiSection(out io.Writer, root *scope, bin string, s settings) {
	res := uiBench(root, bin, s)
	fmt.Fprintf(out, "Dashboard (headless Chromium, overview page; %d tasks pending in the state, no runner)\n", res.tasks)
	if res.err != "" {
		fmt.Fprintf(out, "  incomplete: %s\n", res.err)
	}
	w := table(out)
	fmt.Fprintln(w, "measure\tvalue\t")
	fmt.Fprintf(w, "submit of %d tasks (arrays of 10,000)\t%s ms\t\n", res.tasks, ms(res.submitTime))
	for i, d := range res.cold {
		fmt.Fprintf(w, "first render, new browser #%d\t%s ms\t\n", i+1, ms(d))
	}
	for i, d := range res.warm {
		fmt.Fprintf(w, "first render, reload #%d\t%s ms\t\n", i+1, ms(d))
	}
	if res.tasksCold > 0 {
		fmt.Fprintf(w, "tasks page first render (in-app)\t%s ms\t\n", ms(res.tasksCold))
	}
	fmt.Fprintf(w, "bytes fetched per change (one submit)\t%d B in %d requests\t\n", res.updateBytes, res.updateReqs)
	if res.tabRender > 0 {
		fmt.Fprintf(w, "first render of a dashboard tab, slowest of %d (%d browsers)\t%s ms\t\n", res.tabs, uiBrowsers, ms(res.tabRender))
	}
	win := res.cpuWindow.Round(time.Second)
	fmt.Fprintf(w, "leader CPU, 1 submit/s for %v, no dashboard\t%.1f %%\t\n", win, res.cpuBase)
	if res.cpuTabs > 0 {
		fmt.Fprintf(w, "leader CPU, 1 submit/s for %v, %d overviews open (%d showed every submit)\t%.1f %%\t\n", win, res.tabs, res.live, res.cpuTabs)
	}
	w.Flush()
	if res.leaderChanges > 0 {
		fmt.Fprintf(out, "(the CPU windows were measured again after %d leader change(s) during them)\n", res.leaderChanges)
	}
	fmt.Fprintln(out, "(zero: not measured; render: navigation start to the overview showing the replicas and the task total; bytes: resource")
	fmt.Fprintln(out, " timing transfer sizes of the overview's re-reads, the feed's event itself is ~200 B; CPU % of one core)")
}

// navigate loads url, again when Chromium reports that the machine's
// network changed (other processes create network namespaces).
func navigate(ctx context.Context, url string) error {
	var err error
	for try := 0; try < 10; try++ {
		if err = chromedp.Do(ctx, chromedp.Navigate(url)); err == nil || !strings.Contains(err.Error(), "ERR_NETWORK_CHANGED") {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
	return err
}

func uiBench(root *scope, bin string, s settings) (res uiResult) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		res.err = "no chromium (apt-get install chromium)"
		return res
	}
	sc := root.child("ui")
	defer sc.close()
	c := harness.StartCluster(sc, harness.Options{Bin: bin, Replicas: 3, LogLevel: "warn"})
	leader := c.WaitLeader(harness.LeaderTimeout)
	res.tasks = 100000
	if s.quick {
		res.tasks = 10000
	}
	start := time.Now()
	for n := 0; n < res.tasks; n += 10000 {
		// A request ID makes a retry after a lost leadership safe.
		req := api.SubmitRequest{Command: "true", Array: "0-9999", RequestID: fmt.Sprintf("ui-bench-%d", n)}
		var err error
		var a harness.Answer
		for try := 0; try < 5; try++ {
			leader = c.WaitLeader(harness.LeaderTimeout)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			a, _, err = c.Submit(ctx, leader, req)
			cancel()
			if err == nil && a.Status/100 == 2 {
				break
			}
		}
		if err != nil || a.Status/100 != 2 {
			res.err = fmt.Sprintf("submit: %v %s", err, a)
			return res
		}
	}
	leader = c.WaitLeader(harness.LeaderTimeout)
	res.submitTime = time.Since(start)
	c.WaitSameApplied(time.Minute, 0, 1, 2)
	base := c.Replica(leader).API

	browser := func(base string, limit time.Duration) (context.Context, func(), error) {
		opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.NoSandbox, chromedp.DisableGPU,
			chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1280, 900), chromedp.ExecPath(chromium))
		actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
		ctx, cancel := chromedp.NewContext(actx)
		ctx, tcancel := context.WithTimeout(ctx, limit)
		stop := func() { tcancel(); cancel(); acancel() }
		err := navigate(ctx, base+"/ui/")
		if err == nil {
			err = chromedp.Do(ctx,
				chromedp.WaitVisible(chromedp.ID("login-token")),
				chromedp.SendKeys(chromedp.ID("login-token"), c.AdminToken()),
				chromedp.Click(chromedp.ID("login-submit")),
				chromedp.WaitVisible(chromedp.ID("whoami")))
		}
		if err != nil {
			stop()
			return nil, nil, err
		}
		return ctx, stop, nil
	}
	want := strconv.Itoa(res.tasks)
	rendered := `document.querySelectorAll("#overview-replicas tbody tr").length === 3 && document.querySelector("#overview-tasks-total") && document.querySelector("#overview-tasks-total").innerText === ` + strconv.Quote(want)
	render := func(ctx context.Context, reload bool) (time.Duration, error) {
		start := time.Now()
		var err error
		if reload {
			err = chromedp.Do(ctx, chromedp.Reload())
		} else {
			err = navigate(ctx, base+"/ui/?fresh")
		}
		if err != nil {
			return 0, err
		}
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](rendered, chromedp.WithPollingInterval(10*time.Millisecond))); err != nil {
			return 0, err
		}
		return time.Since(start), nil
	}
	trials := 3
	if s.quick {
		trials = 2
	}
	var ctx context.Context
	var stop func()
	for i := 0; i < trials; i++ {
		if stop != nil {
			stop()
		}
		// A new browser: signing in is not measured; the overview is
		// then loaded again from a cold page (cached scripts only in the
		// sense that this browser just loaded them once).
		if ctx, stop, err = browser(base, 10*time.Minute); err != nil {
			res.err = "chromium: " + err.Error()
			return res
		}
		d, err := render(ctx, false)
		if err != nil {
			res.err = "render: " + err.Error()
			stop()
			return res
		}
		res.cold = append(res.cold, d)
	}
	defer func() { stop() }()
	for i := 0; i < trials; i++ {
		d, err := render(ctx, true)
		if err != nil {
			res.err = "reload: " + err.Error()
			return res
		}
		res.warm = append(res.warm, d)
	}
	// The tasks page, when it exists (pages/tasks.js).
	if ok, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](`!!HR.route("/ui/tasks") && HR.route("/ui/tasks").page.name === "tasks"`)); ok {
		start := time.Now()
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`HR.go("/ui/tasks"), true`)); err == nil {
			if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelectorAll("tbody tr").length > 0`, chromedp.WithPollingInterval(10*time.Millisecond))); err == nil {
				res.tasksCold = time.Since(start)
			}
		}
		navigate(ctx, base+"/ui/")                       //nolint:errcheck // the next step waits for the overview
		chromedp.Run(ctx, chromedp.Poll[bool](rendered)) //nolint:errcheck // idem
	}

	// Bytes per change: clear the resource timings, submit one task, wait
	// for the overview to count it.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`performance.setResourceTimingBufferSize(10000), performance.clearResourceTimings(), true`)); err != nil {
		res.err = err.Error()
		return res
	}
	sctx, scancel := context.WithTimeout(context.Background(), time.Minute)
	c.Submit(sctx, leader, api.SubmitRequest{Command: "true"}) //nolint:errcheck // waited for below
	scancel()
	after := strconv.Quote(strconv.Itoa(res.tasks + 1))
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelector("#overview-tasks-total").innerText === `+after)); err != nil {
		res.err = "update: " + err.Error()
		return res
	}
	time.Sleep(1500 * time.Millisecond) // the re-reads the change caused
	type entry struct {
		Name string  `json:"name"`
		Size float64 `json:"size"`
	}
	entries, err := chromedp.Run(ctx, chromedp.Evaluate[[]entry](`performance.getEntriesByType("resource").filter(e => e.name.includes("/api/")).map(e => ({name: e.name, size: e.transferSize}))`))
	if err != nil {
		res.err = err.Error()
		return res
	}
	for _, e := range entries {
		res.updateBytes += int64(e.Size)
		res.updateReqs++
	}

	stop()
	stop = func() {}
	submitted := res.tasks + 1
	uiCPU(c, leader, s, browser, &res, submitted)
	return res
}

// uiCPU measures the leader's CPU (from /proc/<pid>/stat) over a fixed
// window of one submit a second, first with no browser at all, then with
// uiTabs overviews open in uiBrowsers browsers, each tab opened in turn
// and rendered before the next (bounded by uiTabLimit each). Afterwards it
// counts the tabs that showed every task submitted, as proof that they
// followed the feed during the measure. submitted is the number of tasks
// in the state so far.
func uiCPU(c *harness.Cluster, leader int, s settings, browser func(string, time.Duration) (context.Context, func(), error), res *uiResult, submitted int) {
	window := 20
	if s.quick {
		window = 10
	}
	res.cpuWindow = time.Duration(window) * time.Second
	// cpu measures the leader's CPU over the window; a leadership change
	// during it spoils the figure (reported, and 0).
	cpu := func(what string) float64 {
		leader = c.WaitLeader(harness.LeaderTimeout)
		pid := c.Replica(leader).PID()
		st0, err0 := harness.ReadProcStat(pid)
		t0 := time.Now()
		for i := 0; i < window; i++ {
			sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
			if a, _, err := c.Submit(sctx, leader, api.SubmitRequest{Command: "true"}); err == nil && a.Status/100 == 2 {
				submitted++
			}
			scancel()
			// One a second: sleep what is left of this second.
			time.Sleep(time.Until(t0.Add(time.Duration(i+1) * time.Second)))
		}
		st1, err1 := harness.ReadProcStat(pid)
		if now := c.WaitLeader(harness.LeaderTimeout); now != leader || err0 != nil || err1 != nil {
			res.err = fmt.Sprintf("%s: the leader changed during the measure (replica %d, then %d)", what, leader, now)
			return 0
		}
		return 100 * float64(st1.CPUTicks-st0.CPUTicks) / harness.ClockTicks / time.Since(t0).Seconds()
	}
	// measure opens the tabs on the current leader and measures with them.
	measure := func() {
		opened := leader
		base := c.Replica(opened).API
		// Browsers live long enough for opening every tab at its limit, the
		// measure and the check after it.
		life := uiTabLimit*uiTabs + res.cpuWindow + 5*time.Minute
		ready := `document.querySelectorAll("#overview-replicas tbody tr").length === 3 && /^[0-9]/.test((document.querySelector("#overview-tasks-total") || {}).innerText || "")`
		var tabs []context.Context
		for b := 0; b < uiBrowsers && res.err == ""; b++ {
			bctx, stop, err := browser(base, life)
			if err != nil {
				res.err = fmt.Sprintf("browser %d: %v", b+1, err)
				break
			}
			defer stop()
			for i := 0; i < uiTabs/uiBrowsers; i++ {
				tab := bctx // the browser's first tab, signed in on the overview
				start := time.Now()
				if i > 0 {
					tab, _ = chromedp.NewContext(bctx) // closed with its browser
					// The first call on a tab creates it, bound to the context
					// it is given: the tab's own, not the timeouts below.
					if err = chromedp.Do(tab); err != nil {
						res.err = fmt.Sprintf("open tab %d: %v", len(tabs)+1, err)
						break
					}
					nctx, ncancel := context.WithTimeout(tab, uiTabLimit)
					err = navigate(nctx, base+"/ui/")
					ncancel()
					if err != nil {
						res.err = fmt.Sprintf("open tab %d: %v", len(tabs)+1, err)
						break
					}
				}
				wctx, wcancel := context.WithTimeout(tab, uiTabLimit-time.Since(start))
				_, err = chromedp.Run(wctx, chromedp.Poll[bool](ready, chromedp.WithPollingInterval(50*time.Millisecond)))
				wcancel()
				if err != nil {
					dctx, dcancel := context.WithTimeout(tab, 10*time.Second)
					page, _ := chromedp.Run(dctx, chromedp.Evaluate[string](`location.href + ": " + document.body.innerText.slice(0, 300)`)) //nolint:errcheck // for the message
					dcancel()
					res.err = fmt.Sprintf("tab %d: no first render in %v: %v (page %q)", len(tabs)+1, uiTabLimit, err, page)
					break
				}
				res.tabRender = max(res.tabRender, time.Since(start))
				tabs = append(tabs, tab)
			}
		}
		res.tabs = len(tabs)
		if res.tabs == 0 || res.err != "" {
			return
		}
		time.Sleep(2 * time.Second) // the tabs' first re-reads settle
		if now := c.WaitLeader(harness.LeaderTimeout); now != opened {
			res.err = fmt.Sprintf("dashboards open: the leader changed while the tabs opened (replica %d, then %d)", opened, now)
			return
		}
		res.cpuTabs = cpu("dashboards open")
		want := strconv.Quote(strconv.Itoa(submitted))
		for i, tab := range tabs {
			wctx, wcancel := context.WithTimeout(tab, time.Minute)
			if _, err := chromedp.Run(wctx, chromedp.Poll[bool](`document.querySelector("#overview-tasks-total").innerText === `+want)); err == nil {
				res.live++
			} else if res.err == "" {
				tctx, tcancel := context.WithTimeout(tab, 10*time.Second)
				got, _ := chromedp.Run(tctx, chromedp.Evaluate[string](`document.querySelector("#overview-tasks-total").innerText`)) //nolint:errcheck // for the message
				tcancel()
				res.err = fmt.Sprintf("tab %d shows %s tasks, %s were submitted", i+1, got, want)
			}
			wcancel()
		}
	}
	// A leader change (this machine is shared and busy) spoils a window:
	// measure again, both windows, up to three times.
	for attempt := 1; ; attempt++ {
		res.err, res.tabs, res.live, res.tabRender, res.cpuTabs = "", 0, 0, 0, 0
		if res.cpuBase = cpu("no dashboard"); res.err == "" {
			measure()
		}
		if !strings.Contains(res.err, "leader changed") || attempt == 3 {
			return
		}
		res.leaderChanges++
	}
}
