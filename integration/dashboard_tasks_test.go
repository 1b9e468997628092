//go:build integration

package integration

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/ssh"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// openPage is open, again when chromium reports a network change (other
// tests' Docker networks come and go on this machine).
func openPage(ctx context.Context, base, path, sel string) error {
	var err error
	for try := 0; try < 8; try++ {
		if err = open(ctx, base, path, sel); err == nil || !strings.Contains(err.Error(), "ERR_NETWORK_CHANGED") {
			return err
		}
		time.Sleep(time.Second)
	}
	return err
}

// setSelect sets a <select> (or input) to value and fires the events Vue's
// v-model listens to.
func setSelect(sel, value string) chromedp.Action[chromedp.Void] {
	js := fmt.Sprintf(`(function(){var e=document.querySelector(%q); e.value=%q; e.dispatchEvent(new Event('input')); e.dispatchEvent(new Event('change')); return true})()`, sel, value)
	return evalVoid(js)
}

// evalVoid runs JavaScript js (which returns a boolean) as a step.
func evalVoid(js string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool](js)(ctx, t)
		return err
	})
}

// textOf returns the text of the first element matching sel ("" when none).
func textOf(ctx context.Context, sel string) string {
	s, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel))) //nolint:errcheck // "" on error
	return s
}

// acceptDialogs makes confirm() answer yes in the tab (the kill and stop
// buttons ask first).
func acceptDialogs() chromedp.Action[chromedp.Void] {
	return evalVoid(`window.confirm = function () { return true; }; true`)
}

// readmeShot copies the screenshot name of the test's shots to
// ops/dashboard/screenshots/<name>.png when HAKURIVER_UI_README_SHOTS=1.
func readmeShot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if os.Getenv("HAKURIVER_UI_README_SHOTS") != "1" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(90))
	if err != nil {
		t.Errorf("screenshot %s: %v", name, err)
		return
	}
	p := filepath.Join("..", "ops", "dashboard", "screenshots", name+".png")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("README screenshot %s", p)
}

// TestDashboardTaskFormLogsAndActions submits a task through the submit
// form of a follower, follows its live log on the task page until it
// completes, checks the list's filters find it, then pauses, resumes and
// kills a long task with the task page's buttons; every page renders
// without console errors and is photographed.
func TestDashboardTaskFormLogsAndActions(t *testing.T) {
	d := startDevUI(t)
	ctx := newBrowser(t)
	base := d.URLs[d.follower(t)]
	if err := login(ctx, base, d.Token); err != nil {
		t.Fatalf("login: %v", err)
	}

	// Submit through the form: a command whose argument needs quoting.
	script := `for i in 1 2 3; do echo "hello-from-ui $i"; sleep 1; done; echo done >&2`
	if err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/ui/submit"),
		chromedp.WaitVisible(chromedp.CSS("#submit-form")),
		chromedp.WaitVisible(chromedp.CSS("#s-target-dev-runner-1")),
		chromedp.SendKeys(chromedp.CSS("#s-command"), "sh"),
		chromedp.SendKeys(chromedp.CSS("#s-args"), "-c\n"+script),
		setSelect("#s-container", "NULL"),
		chromedp.SendKeys(chromedp.CSS("#s-memory"), "64M"),
	); err != nil {
		t.Fatalf("fill the submit form: %v", err)
	}
	if got, err := waitText(ctx, "#s-preview", `sh -c 'for i in 1 2 3; do echo "hello-from-ui $i"`); err != nil {
		t.Fatalf("command preview: %v (%q)", err, got)
	}
	shot(t, ctx, "submit")
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS("#s-submit")),
		chromedp.WaitVisible(chromedp.CSS("#submitted-0")),
	); err != nil {
		t.Fatalf("submit: %v", err)
	}
	id := strings.TrimSpace(textOf(ctx, "#submitted-0"))
	t.Logf("submitted task %s through the form", id)

	// Its page: the log follows live, then the task completes.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#submitted-0")), chromedp.WaitVisible(chromedp.CSS("#task-page"))); err != nil {
		t.Fatalf("task page: %v", err)
	}
	if _, err := waitText(ctx, "#task-stdout", "hello-from-ui 1"); err != nil {
		t.Fatalf("live log: %v", err)
	}
	t.Logf("first output line shown while the task is %s", textOf(ctx, "#task-status"))
	if _, err := waitText(ctx, "#task-stdout", "hello-from-ui 3"); err != nil {
		t.Fatal(err)
	}
	if _, err := waitText(ctx, "#task-status", "completed"); err != nil {
		t.Fatal(err)
	}
	if _, err := waitText(ctx, "#task-stderr", "done"); err != nil {
		t.Fatal(err)
	}
	for sel, want := range map[string]string{
		"#task-command":   `sh -c 'for i in 1 2 3; do echo "hello-from-ui $i"; sleep 1; done; echo done >&2'`,
		"#task-exit":      "0",
		"#task-resources": "64.0MiB",
		"#task-timeline":  "started",
		// The placement history: placed, then started, on one runner.
		"#task-placements": "started on dev-runner-",
	} {
		if got, err := waitText(ctx, sel, want); err != nil {
			t.Errorf("%s: %v (%q)", sel, err, got)
		}
	}
	if got := textOf(ctx, "#task-placements"); !regexp.MustCompile(`^placed on (dev-runner-\d) .*\n\s*started on (dev-runner-\d) `).MatchString(got) {
		t.Errorf("placement history = %q, want placed then started", got)
	}
	shot(t, ctx, "task")
	readmeShot(t, ctx, "task")
	noConsoleErrors(t, ctx)

	// The list finds it by text and by status; its row has the exit code.
	if err := openPage(ctx, base, "/ui/tasks?text=hello-from-ui&status=completed", "#task-row-"+id); err != nil {
		t.Fatalf("tasks list filtered: %v", err)
	}
	if got, err := waitText(ctx, "#task-row-"+id, "sh -c"); err != nil {
		t.Errorf("row: %v (%q)", err, got)
	}
	shot(t, ctx, "tasks")
	if err := chromedp.Do(ctx, setSelect("#f-status", "failed")); err != nil {
		t.Fatal(err)
	}
	if _, err := waitText(ctx, "#tasks-table tbody", "No tasks match."); err != nil {
		t.Errorf("status=failed still lists the task: %v", err)
	}

	// A long task: pause, resume and kill with the buttons.
	var sr api.SubmitResponse
	d.post(t, d.leader(t), "/api/submit", api.SubmitRequest{Command: "sleep", Arguments: []string{"300"}, ContainerName: ptr("NULL")}, &sr)
	long := sr.TaskIDs[0]
	if err := openPage(ctx, base, "/ui/task/"+long, "#task-page"); err != nil {
		t.Fatal(err)
	}
	if _, err := waitText(ctx, "#task-status", "running"); err != nil {
		t.Fatal(err)
	}
	steps := []struct{ button, want string }{{"#task-pause", "paused"}, {"#task-resume", "running"}, {"#task-kill", "killed"}}
	for _, s := range steps {
		if err := chromedp.Do(ctx, acceptDialogs(), chromedp.WaitVisible(chromedp.CSS(s.button)), chromedp.Click(chromedp.CSS(s.button))); err != nil {
			t.Fatalf("%s: %v", s.button, err)
		}
		if got, err := waitText(ctx, "#task-status", s.want); err != nil {
			t.Fatalf("after %s: %v (%q; page: %.600s)", s.button, err, got, textOf(ctx, "main"))
		}
		var st struct {
			Status string `json:"status"`
		}
		d.get(t, d.leader(t), "/api/status/"+long, &st)
		if st.Status != s.want {
			t.Fatalf("after %s the API says %s, want %s", s.button, st.Status, s.want)
		}
	}
	shot(t, ctx, "task-killed")
	noConsoleErrors(t, ctx)

	// The other pages of this helper render, reached in the app (no page
	// load): the navigation links and an in-app link with a query.
	for _, p := range []struct{ nav, sel, name string }{{"#nav-vps", "#vps-table", "vps"}, {"#nav-environments", "#env-containers", "environments"}, {"", "#tasks-table", "tasks-vps"}} {
		var err error
		if p.nav != "" {
			err = chromedp.Do(ctx, chromedp.Click(chromedp.CSS(p.nav)), chromedp.WaitVisible(chromedp.CSS(p.sel)))
		} else {
			err = chromedp.Do(ctx, evalVoid(`HR.go('/ui/tasks?type=vps'); true`), chromedp.WaitVisible(chromedp.CSS(p.sel)))
		}
		if err != nil {
			t.Errorf("%s: %v", p.name, err)
			continue
		}
		time.Sleep(time.Second) // the first fetches answer
		shot(t, ctx, p.name)
	}
	if v, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#f-type').value`)); v != "vps" { //nolint:errcheck // checked by value
		t.Errorf("tasks?type=vps opened with the type filter %q", v)
	}
	noConsoleErrors(t, ctx)
}

func ptr[T any](v T) *T { return &v }

// agoRE matches a relative time as HR.fmt.ago renders it.
var agoRE = regexp.MustCompile(`(\d+[dhms] )*\d+[dhms] ago|just now`)

// TestDashboardTasksSameOnFollower opens the task list and a task page on
// the leader and on a follower, in two browsers: both show the same rows
// and the same task.
func TestDashboardTasksSameOnFollower(t *testing.T) {
	d := startDevUI(t)
	l := d.leader(t)
	f := (l + 1) % len(d.URLs)
	var ids []string
	for i := 0; i < 3; i++ {
		var sr api.SubmitResponse
		d.post(t, l, "/api/submit", api.SubmitRequest{Command: "echo", Arguments: []string{fmt.Sprintf("same-%d", i), "it's quoted"}, ContainerName: ptr("NULL"),
			EnvVars: map[string]string{"SECRET": "s3cret-value"}}, &sr)
		ids = append(ids, sr.TaskIDs...)
	}
	texts := map[int]map[string]string{}
	for _, i := range []int{l, f} {
		ctx := newBrowser(t)
		if err := login(ctx, d.URLs[i], d.Token); err != nil {
			t.Fatalf("login on %s: %v", d.URLs[i], err)
		}
		if err := openPage(ctx, d.URLs[i], "/ui/tasks?text=same-", "#task-row-"+ids[0]); err != nil {
			t.Fatalf("tasks on %s: %v", d.URLs[i], err)
		}
		for _, id := range ids {
			if _, err := waitText(ctx, "#task-row-"+id, "completed"); err != nil {
				t.Fatalf("on %s: %v", d.URLs[i], err)
			}
		}
		got := map[string]string{}
		// Relative times differ by when each browser looked.
		got["rows"] = agoRE.ReplaceAllString(textOf(ctx, "#tasks-table tbody"), "AGO")
		if err := openPage(ctx, d.URLs[i], "/ui/task/"+ids[1], "#task-page"); err != nil {
			t.Fatal(err)
		}
		if _, err := waitText(ctx, "#task-stdout", "same-1 it's quoted"); err != nil {
			t.Fatalf("log on %s: %v", d.URLs[i], err)
		}
		for _, sel := range []string{"#task-command", "#task-status", "#task-exit", "#task-node"} {
			got[sel] = textOf(ctx, sel)
		}
		if !strings.Contains(got["#task-command"], `echo same-1 'it'\''s quoted'`) {
			t.Errorf("command shown as %q, want correct shell quoting", got["#task-command"])
		}
		shot(t, ctx, fmt.Sprintf("task-replica-%d", i))
		noConsoleErrors(t, ctx)
		texts[i] = got
	}
	for k, v := range texts[l] {
		if texts[f][k] != v {
			t.Errorf("%s: leader shows %q, follower %q", k, v, texts[f][k])
		}
	}

	// A viewer sees the task, not its secrets, logs or buttons.
	d.cli(t, "user", "add", "vera", "--role", "viewer")
	var tok api.TokenResponse
	if err := json.Unmarshal([]byte(d.cli(t, "-o", "json", "token", "create", "--user", "vera", "--name", "ui")), &tok); err != nil || tok.Token == "" {
		t.Fatalf("viewer token: %v", err)
	}
	ctx := newBrowser(t)
	if err := login(ctx, d.URLs[f], tok.Token); err != nil {
		t.Fatalf("viewer login: %v", err)
	}
	if err := openPage(ctx, d.URLs[f], "/ui/task/"+ids[1], "#task-page"); err != nil {
		t.Fatal(err)
	}
	if got, err := waitText(ctx, "#task-env", "SECRET=hidden"); err != nil {
		t.Errorf("viewer env: %v (%q)", err, got)
	}
	if _, err := waitText(ctx, "#task-logs-forbidden", "operators"); err != nil {
		t.Error(err)
	}
	page := textOf(ctx, "main")
	if strings.Contains(page, "s3cret") || strings.Contains(page, "Kill") {
		t.Errorf("viewer's task page shows a secret or a kill button: %.800s", page)
	}
	shot(t, ctx, "task-viewer")
	// The other pages render for a viewer, without the actions it may not take.
	for _, p := range []struct{ path, sel, absent string }{
		{"/ui/tasks", "#tasks-table", "[id^=kill-batch-]"},
		{"/ui/submit", "#submit-viewer", ""},
		{"/ui/vps", "#vps-table", "#vps-create"},
		{"/ui/environments", "#env-containers", "#env-create"},
	} {
		if err := chromedp.Do(ctx, evalVoid(`HR.go('`+p.path+`'); true`), chromedp.WaitVisible(chromedp.CSS(p.sel))); err != nil {
			t.Errorf("viewer %s: %v", p.path, err)
			continue
		}
		time.Sleep(500 * time.Millisecond)
		if p.absent != "" {
			if n, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('`+p.absent+`').length`)); n != 0 { //nolint:errcheck // 0 on error
				t.Errorf("viewer %s shows %s", p.path, p.absent)
			}
		}
	}
	noConsoleErrors(t, ctx)
}

// TestDashboardEnvironmentTerminal creates an environment container from
// the busybox test image with the environments page's form, opens its
// terminal on a replica, runs a command and reads its output, creates a
// tarball with the page's button and sees its progress end, then deletes
// the container.
func TestDashboardEnvironmentTerminal(t *testing.T) {
	requireDocker(t, busyboxImage)
	d := startDevUI(t)
	env := envName("uiterm")
	t.Cleanup(func() {
		harness.RemoveContainers(t, env)
		harness.RemoveImages(t, envImage(env))
	})
	base := d.URLs[d.follower(t)]
	ctx := newBrowser(t)
	if err := login(ctx, base, d.Token); err != nil {
		t.Fatalf("login: %v", err)
	}
	if err := openPage(ctx, base, "/ui/environments", "#env-create"); err != nil {
		t.Fatalf("environments page: %v", err)
	}
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#env-image"), busyboxImage),
		chromedp.SendKeys(chromedp.CSS("#env-name"), env),
		chromedp.Click(chromedp.CSS("#env-create-btn")),
	); err != nil {
		t.Fatalf("create form: %v", err)
	}
	if _, err := waitText(ctx, "#env-row-"+env, "running"); err != nil {
		t.Fatalf("created environment not listed as running: %v (page: %.500s)", err, textOf(ctx, "main"))
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#env-term-"+env)), chromedp.WaitVisible(chromedp.CSS("#env-terminal"))); err != nil {
		t.Fatal(err)
	}
	if _, err := waitText(ctx, "#env-terminal-state", "connected"); err != nil {
		t.Fatal(err)
	}
	var out string
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out, "Terminal connected") && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		out, _ = chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#env-terminal').getAttribute('data-output') || ''`)) //nolint:errcheck // polled
	}
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#env-terminal .xterm-helper-textarea"), "echo hi-from-term-$((6*7))\n")); err != nil {
		t.Fatalf("type into the terminal: %v", err)
	}
	deadline = time.Now().Add(20 * time.Second)
	for !strings.Contains(out, "hi-from-term-42") && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		out, _ = chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#env-terminal').getAttribute('data-output') || ''`)) //nolint:errcheck // polled
	}
	if !strings.Contains(out, "hi-from-term-42") {
		t.Fatalf("terminal output %q lacks the command's output hi-from-term-42", out)
	}
	shot(t, ctx, "environments-terminal")
	noConsoleErrors(t, ctx)

	// create-tar with its progress.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#env-terminal-close")), chromedp.Click(chromedp.CSS("#env-tar-"+env)),
		chromedp.WaitVisible(chromedp.CSS("#env-progress-"+env))); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(createTarTimeout)
	var prog string
	for time.Now().Before(deadline) {
		prog = textOf(ctx, "#env-progress-"+env)
		if strings.Contains(prog, "done") || strings.Contains(prog, "failed") {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	if !strings.Contains(prog, "done") {
		t.Fatalf("create-tar progress %q (page: %.500s)", prog, textOf(ctx, "main"))
	}
	if _, err := waitText(ctx, "#env-tarballs", env); err != nil {
		t.Errorf("tarball not listed: %v", err)
	}
	shot(t, ctx, "environments")

	// A VPS of this environment: its rows never show its SSH key (the
	// runners of hakuriver dev run natively, so it fails, and stays listed).
	epub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(epub)
	if err != nil {
		t.Fatal(err)
	}
	key := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))) + " ui-test@laptop"
	var sr api.SubmitResponse
	d.post(t, d.leader(t), "/api/submit", api.SubmitRequest{TaskType: "vps", Command: key, ContainerName: ptr(env)}, &sr)
	vps := sr.TaskIDs[0]
	if err := chromedp.Do(ctx, evalVoid(`HR.go('/ui/vps'); true`), chromedp.WaitVisible(chromedp.CSS("#vps-table")),
		chromedp.Click(chromedp.CSS("#vps-all")), chromedp.WaitVisible(chromedp.CSS("#vps-row-"+vps))); err != nil {
		t.Fatalf("VPS page: %v", err)
	}
	shot(t, ctx, "vps")
	if err := chromedp.Do(ctx, evalVoid(`HR.go('/ui/tasks?type=vps'); true`), chromedp.WaitVisible(chromedp.CSS("#task-row-"+vps))); err != nil {
		t.Fatalf("tasks page: %v", err)
	}
	if row := textOf(ctx, "#task-row-"+vps); !strings.Contains(row, "VPS") || strings.Contains(row, "ssh-ed25519") {
		t.Errorf("VPS row %q: want VPS, never its key", row)
	}
	if body := textOf(ctx, "#vps-table, #tasks-table"); strings.Contains(body, "AAAA") {
		t.Errorf("a list shows the SSH key: %q", body)
	}

	// Delete.
	if err := chromedp.Do(ctx, evalVoid(`HR.go('/ui/environments'); true`), acceptDialogs(), chromedp.Click(chromedp.CSS("#env-del-"+env)), chromedp.WaitNotPresent(chromedp.CSS("#env-row-"+env))); err != nil {
		t.Fatalf("delete: %v", err)
	}
	noConsoleErrors(t, ctx)
}

// TestDashboardBatchKeysAndPhone submits an array through the form and
// kills the whole batch with its group's button; generates an ed25519 key
// pair in the browser for a VPS (the public key parses, the private key
// offered once matches it); and checks the task page has no horizontal
// scrolling at phone width with a long command.
func TestDashboardBatchKeysAndPhone(t *testing.T) {
	d := startDevUI(t)
	base := d.URLs[d.follower(t)]
	ctx := newBrowser(t)
	if err := login(ctx, base, d.Token); err != nil {
		t.Fatalf("login: %v", err)
	}
	// An array of 4 long tasks, at most 2 at once.
	if err := openPage(ctx, base, "/ui/submit", "#submit-form"); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#s-command"), "sleep"),
		chromedp.SendKeys(chromedp.CSS("#s-args"), "300"),
		setSelect("#s-container", "NULL"),
		chromedp.SendKeys(chromedp.CSS("#s-array"), "0-3%2"),
		chromedp.Click(chromedp.CSS("#s-submit")),
		chromedp.WaitVisible(chromedp.CSS("#submitted-3")),
	); err != nil {
		t.Fatalf("submit an array: %v", err)
	}
	first := strings.TrimSpace(textOf(ctx, "#submitted-0"))
	var st struct {
		BatchID string `json:"batch_id"`
	}
	d.get(t, d.leader(t), "/api/status/"+first, &st)
	if err := chromedp.Do(ctx, evalVoid(`HR.go('/ui/tasks'); true`), chromedp.WaitVisible(chromedp.CSS("#batch-"+st.BatchID))); err != nil {
		t.Fatalf("batch group: %v", err)
	}
	if _, err := waitText(ctx, "#batch-"+st.BatchID, "4 tasks listed, array"); err != nil {
		t.Error(err)
	}
	if _, err := waitText(ctx, "#batch-"+st.BatchID, "2 running"); err != nil {
		t.Error(err)
	}
	shot(t, ctx, "tasks-batch")
	if err := chromedp.Do(ctx, acceptDialogs(), chromedp.Click(chromedp.CSS("#kill-batch-"+st.BatchID))); err != nil {
		t.Fatal(err)
	}
	if _, err := waitText(ctx, "#batch-"+st.BatchID, "4 killed"); err != nil {
		t.Errorf("after Kill batch: %v", err)
	}
	noConsoleErrors(t, ctx)

	// A key pair made in the browser.
	if err := chromedp.Do(ctx, evalVoid(`HR.go('/ui/submit?mode=vps'); true`), chromedp.WaitVisible(chromedp.CSS("#s-sshkey"))); err != nil {
		t.Fatal(err)
	}
	gen, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](`!!document.querySelector('#s-genkey')`)) //nolint:errcheck // false on error
	if !gen {
		t.Logf("this chromium has no WebCrypto Ed25519: the page offers paste only")
	} else {
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#s-genkey")), chromedp.WaitVisible(chromedp.CSS("#s-privkey"))); err != nil {
			t.Fatalf("generate a key: %v (page: %.300s)", err, textOf(ctx, "main"))
		}
		pubText, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#s-sshkey').value`))                                                          //nolint:errcheck // checked below
		privText, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`fetch(document.querySelector('#s-privkey a').href).then(r => r.text())`, chromedp.EvalAwaitPromise)) //nolint:errcheck // checked below
		pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(pubText))
		if err != nil || pub.Type() != ssh.KeyAlgoED25519 {
			t.Fatalf("generated public key %q: %v", pubText, err)
		}
		signer, err := ssh.ParsePrivateKey([]byte(privText))
		if err != nil {
			t.Fatalf("offered private key does not parse: %v\n%s", err, privText)
		}
		if !bytes.Equal(signer.PublicKey().Marshal(), pub.Marshal()) {
			t.Fatal("the offered private key does not match the public key")
		}
		// Offered once: gone after the download link is used.
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#s-privkey a")), chromedp.WaitNotPresent(chromedp.CSS("#s-privkey"))); err != nil {
			t.Errorf("private key still offered after its download: %v", err)
		}
		shot(t, ctx, "submit-vps")
	}
	noConsoleErrors(t, ctx)

	// A large log opens at its end, without downloading all of it.
	var big api.SubmitResponse
	d.post(t, d.leader(t), "/api/submit", api.SubmitRequest{Command: "sh", Arguments: []string{"-c", "yes 0123456789abcdef | head -c 2000000; echo; echo LAST-LINE"}, ContainerName: ptr("NULL")}, &big)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		var st struct {
			Status string `json:"status"`
		}
		d.get(t, d.leader(t), "/api/status/"+big.TaskIDs[0], &st)
		if st.Status == "completed" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("large-log task: %s", st.Status)
		}
	}
	if err := chromedp.Do(ctx, evalVoid(`HR.go('/ui/task/`+big.TaskIDs[0]+`'); true`), chromedp.WaitVisible(chromedp.CSS("#task-stdout"))); err != nil {
		t.Fatal(err)
	}
	if got, err := waitText(ctx, "#task-stdout", "LAST-LINE"); err != nil || !strings.Contains(got, "earlier output not shown") || len(got) > 300<<10 {
		t.Errorf("large log: %d characters shown, %v", len(got), err)
	}

	// Phone width: a long command wraps.
	var sr api.SubmitResponse
	long := strings.Repeat("a-very-long-argument-without-spaces-", 12)
	d.post(t, d.leader(t), "/api/submit", api.SubmitRequest{Command: "echo", Arguments: []string{long}, ContainerName: ptr("NULL")}, &sr)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile)); err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct{ path, sel string }{{"/ui/task/" + sr.TaskIDs[0], "#task-stdout"}, {"/ui/tasks", "#tasks-table"}, {"/ui/submit", "#submit-form"}, {"/ui/vps", "#vps-table"}, {"/ui/environments", "#env-containers"}} {
		if err := chromedp.Do(ctx, evalVoid(`HR.go('`+p.path+`'); true`), chromedp.WaitVisible(chromedp.CSS(p.sel))); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		// Neither the page nor a table scrolls sideways.
		over, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`Math.max(document.documentElement.scrollWidth - document.documentElement.clientWidth,
			...Array.from(document.querySelectorAll('.table-responsive')).map(e => e.scrollWidth - e.clientWidth))`)) //nolint:errcheck // 0 on error
		if over > 0 {
			t.Errorf("%s at 390 px scrolls sideways by %d px", p.path, over)
		}
		shot(t, ctx, "phone-"+strings.Split(strings.TrimPrefix(p.path, "/ui/"), "/")[0])
	}
	noConsoleErrors(t, ctx)
}
