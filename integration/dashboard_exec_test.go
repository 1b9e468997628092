//go:build integration

package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
)

// TestDashboardTaskTerminal opens the terminal of a running native task on
// its page, served by a follower with the session cookie, types a command
// and reads its output; the page lists the CLI commands that reach it.
func TestDashboardTaskTerminal(t *testing.T) {
	d := startDevUI(t)
	f := d.follower(t)
	var sr api.SubmitResponse
	d.post(t, f, "/api/submit", native("sleep", "600"), &sr)
	if len(sr.TaskIDs) != 1 {
		t.Fatalf("submit: %+v", sr)
	}
	id := sr.TaskIDs[0]
	t.Cleanup(func() { d.post(t, f, "/api/kill/"+id, nil, nil) })
	deadline := time.Now().Add(taskTimeout)
	for {
		var task api.Task
		d.get(t, f, "/api/status/"+id, &task)
		if task.Status == "running" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s is %s after %s, want running", id, task.Status, taskTimeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
	base := d.URLs[f]
	ctx := newBrowser(t)
	if err := login(ctx, base, d.Token); err != nil {
		t.Fatalf("login: %v", err)
	}
	if err := openPage(ctx, base, "/ui/task/"+id, "#task-terminal-open"); err != nil {
		t.Fatalf("task page: %v", err)
	}
	if s := textOf(ctx, "#task-access"); !strings.Contains(s, "hakuriver connect "+id) || !strings.Contains(s, "hakuriver forward "+id) || !strings.Contains(s, "hakuriver cp ") {
		t.Fatalf("the access commands %q lack connect, forward or cp for %s", s, id)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#task-terminal-open")), chromedp.WaitVisible(chromedp.CSS("#task-terminal"))); err != nil {
		t.Fatal(err)
	}
	if _, err := waitText(ctx, "#task-terminal-state", "connected"); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#task-terminal .xterm-helper-textarea"), "echo from-the-page-$((6*7))\n")); err != nil {
		t.Fatalf("type into the terminal: %v", err)
	}
	var out string
	deadline = time.Now().Add(20 * time.Second)
	for !strings.Contains(out, "from-the-page-42") && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		out, _ = chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#task-terminal').getAttribute('data-output') || ''`)) //nolint:errcheck // polled
	}
	if !strings.Contains(out, "from-the-page-42") {
		t.Fatalf("terminal output %q lacks the command's output from-the-page-42", out)
	}
	shot(t, ctx, "task-terminal")
	noConsoleErrors(t, ctx)
}
