//go:build integration

package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The dashboard's browser tests drive Debian's chromium (installed by
// .ci/test-deps.sh) with chromedp against a real `hakuriver dev --replicas 3
// --runners 2`. Screenshots go to the test's temp dir, and also to
// $HAKURIVER_UI_SHOTS when set (a CI artifact directory).

// devUI is a running `hakuriver dev` cluster.
type devUI struct {
	// URLs are the replicas' API (and dashboard) base URLs.
	URLs []string
	// Token is the admin's API token from the dev export line.
	Token string
	// Host is the HAKURIVER_HOST value (the URLs, comma-separated).
	Host string
	// DataDir is the cluster's --data-dir.
	DataDir string
}

// exportLine matches the dev command's "export HAKURIVER_HOST=..." line.
var exportLine = regexp.MustCompile(`export HAKURIVER_HOST=(\S+) .*HAKURIVER_TOKEN=(\S+)`)

// freeBase returns a port p such that p..p+n-1 and p+100..p+100+n-1 are free
// on loopback (the dev command's API and SSH proxy ports).
func freeBase(t *testing.T, n int) int {
	t.Helper()
	for try := 0; try < 50; try++ {
		base := 20000 + rand.Intn(30000)
		ok := true
		var ls []net.Listener
		for i := 0; i < n && ok; i++ {
			for _, p := range []int{base + i, base + 100 + i} {
				l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
				if err != nil {
					ok = false
					break
				}
				ls = append(ls, l)
			}
		}
		for _, l := range ls {
			l.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free port range for hakuriver dev")
	return 0
}

// devOption changes how startDevUI starts the cluster.
type devOption func(t *testing.T, cmd *exec.Cmd)

// withFakeGPUs puts the fake nvidia-smi of the runner's resource tests
// (an RTX 4090 and a Tesla K80 with fixed figures) first on the cluster's
// PATH: both runners report those two GPUs, live figures included.
func withFakeGPUs() devOption {
	return func(t *testing.T, cmd *exec.Cmd) {
		t.Helper()
		fake, err := filepath.Abs(filepath.Join("..", "runner", "resources", "testdata", "nvidia-smi"))
		if err != nil {
			t.Fatal(err)
		}
		bin := t.TempDir()
		if err := os.Symlink(fake, filepath.Join(bin, "nvidia-smi")); err != nil {
			t.Fatal(err)
		}
		cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	}
}

// startDevUI starts `hakuriver dev --replicas 3 --runners 2` with its own
// data dir and ports, waits for its export line and stops it (SIGINT) when
// the test ends.
func startDevUI(t *testing.T, opts ...devOption) *devUI {
	t.Helper()
	dir := t.TempDir()
	base := freeBase(t, 3)
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, hostBin, "dev", "--replicas", "3", "--runners", "2",
		"--data-dir", filepath.Join(dir, "data"), "--api-port", fmt.Sprint(base))
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 15 * time.Second
	for _, o := range opts {
		o(t, cmd)
	}
	logf, err := os.Create(filepath.Join(dir, "dev.log"))
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start hakuriver dev: %v", err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		start := time.Now()
		cancel()
		<-done
		t.Logf("hakuriver dev stopped in %v", time.Since(start).Round(time.Millisecond))
		logf.Close()
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(dir, "dev.log")); err == nil {
				t.Logf("hakuriver dev log (last 4 KiB):\n%s", tail(b, 4096))
			}
		}
	})
	found := make(chan *devUI, 1)
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			fmt.Fprintln(logf, sc.Text())
			if m := exportLine.FindStringSubmatch(sc.Text()); m != nil {
				found <- &devUI{URLs: strings.Split(m[1], ","), Host: m[1], Token: m[2], DataDir: filepath.Join(dir, "data")}
			}
		}
		io.Copy(io.Discard, stdout) //nolint:errcheck // draining
		cmd.Wait()                  //nolint:errcheck // reported by the log on failure
	}()
	select {
	case d := <-found:
		d.waitRunners(t, 2)
		return d
	case <-done:
		t.Fatal("hakuriver dev exited before printing its export line")
	case <-time.After(90 * time.Second):
		t.Fatal("hakuriver dev printed no export line in 90s")
	}
	return nil
}

// tail returns the last n bytes of b.
func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// get calls GET path on replica i as the admin and decodes the JSON answer
// into out.
func (d *devUI) get(t *testing.T, i int, path string, out any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, d.URLs[i]+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+d.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
	}
}

// post calls POST path on replica i as the admin with a JSON body and
// decodes the JSON answer into out; the answer must be 2xx.
func (d *devUI) post(t *testing.T, i int, path string, body, out any) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, d.URLs[i]+path, strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+d.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST %s: %d %s", path, resp.StatusCode, rb)
	}
	if out != nil {
		if err := json.Unmarshal(rb, out); err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
	}
}

// eval evaluates a JavaScript expression in the page and returns its value.
func eval[T any](ctx context.Context, expr string) (T, error) {
	return chromedp.Run(ctx, chromedp.Evaluate[T](expr))
}

// leader returns the index in URLs of the current leader.
func (d *devUI) leader(t *testing.T) int {
	t.Helper()
	var c struct {
		LeaderAPI string `json:"leader_api"`
	}
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		d.get(t, 0, "/api/cluster", &c)
		for i, u := range d.URLs {
			if c.LeaderAPI != "" && strings.TrimSuffix(c.LeaderAPI, "/") == u {
				return i
			}
		}
	}
	t.Fatalf("no leader among %v", d.URLs)
	return -1
}

// follower returns the index in URLs of a replica that is not the leader.
func (d *devUI) follower(t *testing.T) int {
	return (d.leader(t) + 1) % len(d.URLs)
}

// waitRunners waits until n runners are online.
func (d *devUI) waitRunners(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
		var nodes []struct {
			Status string `json:"status"`
		}
		d.get(t, 0, "/api/nodes", &nodes)
		online := 0
		for _, nd := range nodes {
			if nd.Status == "online" {
				online++
			}
		}
		if online >= n {
			return
		}
	}
	t.Fatalf("%d runners not online in 60s", n)
}

// cli runs the hakuriver CLI against the dev cluster as the admin.
func (d *devUI) cli(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, hostBin, args...)
	cmd.Env = append(os.Environ(), "HAKURIVER_HOST="+d.Host, "HAKURIVER_TOKEN="+d.Token)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("hakuriver %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// consoleLog collects a browser tab's JavaScript exceptions and console
// errors.
type consoleLog struct {
	mu   sync.Mutex
	errs []string
}

func (c *consoleLog) add(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.errs = append(c.errs, s)
}

// take returns the errors collected so far and forgets them.
func (c *consoleLog) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.errs
	c.errs = nil
	return e
}

type consoleKey struct{}

// newBrowser starts a headless chromium (no sandbox: the tests run as
// root) at 1280x900 and returns a tab's context, cancelled after 2 minutes
// or when the test ends. JavaScript exceptions and console errors are
// collected for noConsoleErrors.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	return newBrowserFor(t, 2*time.Minute)
}

// newBrowserFor is newBrowser with the browser's lifetime given.
func newBrowserFor(t *testing.T, life time.Duration) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 900),
	)
	if p, err := exec.LookPath("chromium"); err == nil {
		opts = append(opts, chromedp.ExecPath(p))
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	cl := &consoleLog{}
	ctx, cancel := chromedp.NewContext(context.WithValue(actx, consoleKey{}, cl))
	ctx, tcancel := context.WithTimeout(ctx, life)
	if err := chromedp.Do(ctx); err != nil {
		tcancel()
		cancel()
		acancel()
		t.Fatalf("start chromium: %v", err)
	}
	msgs := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException {
				cl.add(m.String() + " " + m.URL)
			}
		}
	}()
	t.Cleanup(func() {
		start := time.Now()
		tcancel()
		cancel()
		acancel()
		<-done
		t.Logf("browser closed in %v", time.Since(start).Round(time.Millisecond))
	})
	return ctx
}

// noConsoleErrors fails the test when the tab of ctx logged a JavaScript
// exception or console error since the last call (a refused request while
// signed out, 401, is expected and ignored).
func noConsoleErrors(t *testing.T, ctx context.Context) {
	t.Helper()
	cl, _ := ctx.Value(consoleKey{}).(*consoleLog)
	if cl == nil {
		t.Fatal("noConsoleErrors: not a newBrowser context")
	}
	for _, e := range cl.take() {
		// A refused request while signed out is expected; so is a request
		// cut by the host's network changing under Chromium (other tests
		// create and delete network namespaces): the page retries it.
		if strings.Contains(e, "status of 401") || strings.Contains(e, "ERR_NETWORK_CHANGED") {
			continue
		}
		t.Errorf("browser console: %s", e)
	}
}

// navigate loads url, again when Chromium reports that the machine's
// network changed (other tests create and remove Docker networks).
func navigate(ctx context.Context, url string) error {
	var err error
	for try := 0; try < 10; try++ {
		start := time.Now()
		if err = chromedp.Do(ctx, chromedp.Navigate(url)); err == nil || !strings.Contains(err.Error(), "ERR_NETWORK_CHANGED") {
			return err
		}
		fmt.Fprintf(os.Stderr, "navigate %s: %v after %v, again\n", url, err, time.Since(start).Round(time.Millisecond))
		time.Sleep(200 * time.Millisecond)
	}
	return err
}

// goTo switches the signed-in dashboard of ctx to path ("/ui/nodes") the
// way a click on a link does (history navigation, no page load) and waits
// for sel to be visible.
func goTo(ctx context.Context, path, sel string) error {
	if _, err := eval[bool](ctx, fmt.Sprintf(`HR.go(%q), true`, path)); err != nil {
		return err
	}
	return chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(sel)))
}

// login opens base's dashboard and signs in with token through the login
// page, then waits for the who-am-I badge.
func login(ctx context.Context, base, token string) error {
	// Chromium aborts requests when the host's network changes (Docker
	// tests running alongside create interfaces): a sign-in whose request
	// was aborted is tried again, each attempt bounded.
	var err error
	for attempt := 0; attempt < 4; attempt++ {
		if err = navigate(ctx, base+"/ui/"); err != nil {
			continue
		}
		actx, cancel := context.WithTimeout(ctx, 20*time.Second)
		state := ""
		for state == "" && actx.Err() == nil {
			// Signed in already (an earlier attempt's answer came late),
			// or the form: whichever shows first.
			state, _ = eval[string](actx, `(() => {
				const vis = id => { const e = document.getElementById(id); return !!(e && e.offsetParent); };
				return vis("whoami") ? "in" : vis("login-token") ? "form" : "";
			})()`)
			if state == "" {
				time.Sleep(100 * time.Millisecond)
			}
		}
		switch state {
		case "in":
			err = nil
		case "form":
			err = chromedp.Do(actx,
				chromedp.SendKeys(chromedp.ID("login-token"), token),
				chromedp.Click(chromedp.ID("login-submit")),
				chromedp.WaitVisible(chromedp.ID("whoami")),
			)
		default:
			err = fmt.Errorf("neither the sign-in form nor the signed-in page shows: %w", actx.Err())
		}
		cancel()
		if err == nil || ctx.Err() != nil {
			return err
		}
	}
	return fmt.Errorf("sign in, 4 attempts: %w", err)
}

// open navigates to a dashboard path ("/ui/nodes") of base and waits for
// sel to be visible.
func open(ctx context.Context, base, path, sel string) error {
	if err := navigate(ctx, base+path); err != nil {
		return err
	}
	return chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(sel)))
}

// waitText waits until the text of the first element matching sel contains
// want (the page re-renders on live updates), up to 30 seconds.
func waitText(ctx context.Context, sel, want string) (string, error) {
	var got string
	deadline := time.Now().Add(30 * time.Second)
	for {
		tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		var err error
		got, err = chromedp.Run(tctx, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible))
		cancel()
		if err == nil && strings.Contains(got, want) {
			return got, nil
		}
		if time.Now().After(deadline) {
			return got, fmt.Errorf("%s: text %q does not contain %q (err %v)", sel, got, want, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// shot saves a screenshot of the whole page as <name>.png in the test's temp
// dir (and in $HAKURIVER_UI_SHOTS when set) and logs its path.
func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Errorf("screenshot %s: %v", name, err)
		return
	}
	dirs := []string{t.TempDir()}
	if d := os.Getenv("HAKURIVER_UI_SHOTS"); d != "" {
		dirs = append(dirs, d)
	}
	for _, dir := range dirs {
		p := filepath.Join(dir, name+".png")
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Errorf("screenshot %s: %v", name, err)
			continue
		}
		t.Logf("screenshot %s", p)
	}
}
