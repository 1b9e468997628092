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
	tabs        int
	err         string
}

// uiTabs is the number of dashboards open during the CPU measure.
const uiTabs = 10

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
	fmt.Fprintf(w, "leader CPU, 1 submit/s, no dashboard\t%.1f %%\t\n", res.cpuBase)
	if res.cpuTabs > 0 {
		fmt.Fprintf(w, "leader CPU, 1 submit/s, %d overviews open\t%.1f %%\t\n", res.tabs, res.cpuTabs)
	}
	w.Flush()
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

	browser := func() (context.Context, func(), error) {
		opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.NoSandbox, chromedp.DisableGPU,
			chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1280, 900), chromedp.ExecPath(chromium))
		actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
		ctx, cancel := chromedp.NewContext(actx)
		ctx, tcancel := context.WithTimeout(ctx, 10*time.Minute)
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
		if ctx, stop, err = browser(); err != nil {
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
	c.Submit(sctx, leader, api.SubmitRequest{Command: "true"}) //nolint:errcheck // counted below
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

	// Leader CPU: 10 s of one submit a second, without and with tabs.
	cpu := func() float64 {
		pid := c.Replica(leader).PID()
		st0, _ := harness.ReadProcStat(pid)
		t0 := time.Now()
		for i := 0; i < 10; i++ {
			sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
			c.Submit(sctx, leader, api.SubmitRequest{Command: "true"}) //nolint:errcheck // load only
			scancel()
			time.Sleep(time.Second)
		}
		st1, _ := harness.ReadProcStat(pid)
		return 100 * float64(st1.CPUTicks-st0.CPUTicks) / harness.ClockTicks / time.Since(t0).Seconds()
	}
	stop()
	ctx, stop, err = browser()
	if err != nil {
		res.err = err.Error()
		return res
	}
	chromedp.Do(ctx, chromedp.Navigate("about:blank")) //nolint:errcheck // no dashboard open
	res.cpuBase = cpu()
	// Tabs whose load the network's changes cut are opened again, up to
	// three times as many tries as tabs.
	for try := 0; res.tabs < uiTabs && try < 3*uiTabs; try++ {
		tab, cancelTab := chromedp.NewContext(ctx)
		if err := navigate(tab, base+"/ui/"); err != nil {
			cancelTab()
			res.err = "some tabs: " + err.Error()
			continue
		}
		res.tabs++
	}
	if res.tabs == 0 || ctx.Err() != nil {
		res.err = "tabs: the browser's time ran out while opening them"
		return res
	}
	time.Sleep(2 * time.Second)
	res.cpuTabs = cpu()
	if ctx.Err() != nil {
		// The browser closed during the measure: it does not count.
		res.cpuTabs = 0
		res.err = "tabs: the browser's time ran out during the CPU measure"
	}
	return res
}
