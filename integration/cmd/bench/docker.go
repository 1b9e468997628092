//go:build integration

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/integration/harness"
	"github.com/hakuriver/hakuriver-ha/ops/environment"
)

// Docker test images (make test-images).
const (
	benchBusybox = "hakuriver-test/busybox:latest"
	benchSSHD    = "hakuriver-test/sshd:latest"
)

// Bounds of the Docker measurements.
const (
	createTarBudget  = 5 * time.Minute
	dockerTaskBudget = 2 * time.Minute
	// bigEnvBytes is the size of the random file in the tarball-sync
	// environment.
	bigEnvBytes = 100_000_000
)

// dockerSamples is how many warm-image tasks each latency row times.
func dockerSamples(s settings) int {
	if s.quick {
		return 20
	}
	return 50
}

// syncTrials is how many cold loads of the 100 MB environment are timed.
func syncTrials(s settings) int {
	if s.quick {
		return 1
	}
	return 3
}

// benchSuffix returns 8 random hex digits for names unique to this run
// (every runner on this machine shares one Docker engine).
func benchSuffix() string {
	b := make([]byte, 4)
	rand.Read(b) //nolint:errcheck // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

// benchEnvImage is the image a runner runs environment env's tasks from.
func benchEnvImage(env string) string { return environment.ImageName(env) }

// dockerResult gathers the Docker measurements.
type dockerResult struct {
	runner, via string
	ours        []time.Duration // submit sent → started_at, sorted
	direct      []time.Duration // `docker run --rm` wall time, sorted
	directStart []time.Duration // `docker run -d` exec → the container's State.StartedAt, sorted
	tarBytes    int64
	syncSubmit  []time.Duration // submit sent → started_at with the image deleted
	syncLog     []time.Duration // the runner's "environment tarball loaded" took=
	plainLoad   []time.Duration // `docker load -i` wall time
	firstErr    string
	skipped     string
}

func (r *dockerResult) fail(format string, args ...any) {
	if r.firstErr == "" {
		r.firstErr = fmt.Sprintf(format, args...)
	}
}

// dockerSection runs and prints the "docker" part.
func dockerSection(out io.Writer, root *scope, bin string, s settings) {
	printDocker(out, s, dockerBench(root, bin, s))
}

// startDockerBench starts a cluster of replicas replicas (info logs, so the
// runner logs its tarball loads) and one Docker runner with a unique name,
// whose containers are removed at cleanup.
func startDockerBench(sc *scope, bin string, replicas int, prefix string) (*harness.Cluster, string) {
	c := harness.StartCluster(sc, harness.Options{Bin: bin, Replicas: replicas, LogLevel: "info",
		HeartbeatInterval: benchHBInterval, HeartbeatTimeoutFactor: benchHBFactor})
	name := prefix + "-" + benchSuffix()
	sc.Cleanup(func() { harness.RemoveRunnerContainers(sc, name) })
	c.StartRunner(name, harness.RunnerOptions{Cores: 2, Memory: "4G"})
	return c, name
}

// benchEnvironment creates environment env from image through the CLI and
// registers the removal of its container, image and tarballs.
func benchEnvironment(sc *scope, c *harness.Cluster, image, env string) {
	sc.Cleanup(func() {
		harness.RemoveContainers(sc, env)
		harness.RemoveImages(sc, benchEnvImage(env))
		tars, _ := filepath.Glob(filepath.Join(c.SharedDir(), "hakuriver-containers", env+"-*.tar")) //nolint:errcheck // pattern is valid
		for _, t := range tars {
			if err := os.Remove(t); err != nil {
				sc.Logf("cleanup: %v", err)
			}
		}
	})
	if r := c.CLIVia(nil, createTarBudget, "", "docker", "create-container", image, env); r.Code != 0 {
		sc.Fatalf("create environment %s from %s: %s", env, image, r)
	}
}

// benchCreateTar runs `docker create-tar env` through the CLI.
func benchCreateTar(sc *scope, c *harness.Cluster, env string) api.CreateTarResponse {
	r := c.CLIVia(nil, createTarBudget, "", "-o", "json", "docker", "create-tar", env)
	if r.Code != 0 {
		sc.Fatalf("create-tar %s: %s", env, r)
	}
	var res api.CreateTarResponse
	if err := r.Decode(&res); err != nil {
		sc.Fatalf("create-tar %s: %v", env, err)
	}
	return res
}

// submitUntilStarted submits req through replica via and waits until the
// task is final; it returns submit sent → started_at, or an error.
func submitUntilStarted(c *harness.Cluster, via int, req api.SubmitRequest, budget time.Duration) (time.Duration, error) {
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	a, out, err := c.Submit(ctx, via, req)
	cancel()
	if err != nil || a.Status != http.StatusAccepted || len(out.TaskIDs) != 1 {
		return 0, fmt.Errorf("submit: %v %s", err, a)
	}
	id := out.TaskIDs[0]
	t, ok := awaitFinal(c, via, id, t0.Add(budget))
	switch {
	case !ok:
		return 0, fmt.Errorf("task %s not final within %s", id, budget)
	case t.Status != "completed":
		return 0, fmt.Errorf("task %s ended %s: %s", id, t.Status, t.ErrorMessage)
	case t.StartedAt == nil:
		return 0, fmt.Errorf("task %s completed without started_at", id)
	}
	return t.StartedAt.Sub(t0), nil
}

// timeDocker runs the docker CLI with args and returns its wall time.
func timeDocker(args ...string) (time.Duration, error) {
	t0 := time.Now()
	_, err := harness.Docker(args...)
	return time.Since(t0), err
}

// dockerRunToStart runs `docker run -d` of image `true` and returns the
// time from the CLI's exec to the container's State.StartedAt (same
// machine, same clock), then removes the container.
func dockerRunToStart(image string) (time.Duration, error) {
	name := "hkb-direct-" + benchSuffix()
	t0 := time.Now()
	if _, err := harness.Docker("run", "-d", "--name", name, "--network", "none", image, "true"); err != nil {
		return 0, err
	}
	defer harness.Docker("rm", "-f", name) //nolint:errcheck // best effort
	st, err := harness.Docker("container", "inspect", "--format", "{{.State.StartedAt}}", name)
	if err != nil {
		return 0, err
	}
	at, err := time.Parse(time.RFC3339Nano, st)
	if err != nil {
		return 0, fmt.Errorf("StartedAt %q: %w", st, err)
	}
	return at.Sub(t0), nil
}

var tookRE = regexp.MustCompile(`took=(\S+)`)

// loadedTook returns the took= values of the runner log's "environment
// tarball loaded" lines for env, in order.
func loadedTook(path, env string) []time.Duration {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []time.Duration
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.Contains(line, "environment tarball loaded") || !strings.Contains(line, env) {
			continue
		}
		if m := tookRE.FindStringSubmatch(line); m != nil {
			if d, err := time.ParseDuration(strings.Trim(m[1], `"`)); err == nil {
				out = append(out, d)
			}
			continue
		}
		// JSON logs
		var rec struct {
			Took any `json:"took"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil {
			switch v := rec.Took.(type) {
			case string:
				if d, err := time.ParseDuration(v); err == nil {
					out = append(out, d)
				}
			case float64:
				out = append(out, time.Duration(v))
			}
		}
	}
	return out
}

// dockerBench starts 3 replicas and one Docker runner and measures warm
// Docker task latency against `docker run`, then the cold load of a
// 100 MB environment against `docker load`.
func dockerBench(parent *scope, bin string, s settings) dockerResult {
	var res dockerResult
	if p := harness.DockerProblem(benchBusybox); p != "" {
		res.skipped = p
		return res
	}
	sc := parent.child("docker")
	defer sc.close()
	c, runner := startDockerBench(sc, bin, 3, "bd")
	res.runner = runner
	via := c.Followers()[0]
	res.via = c.Replica(via).ID

	// (a) warm image.
	env := "hkb-warm-" + benchSuffix()
	benchEnvironment(sc, c, benchBusybox, env)
	benchCreateTar(sc, c, env)
	req := api.SubmitRequest{Command: "true", ContainerName: &env, Targets: []string{runner}}
	const warmup = 3
	n := dockerSamples(s)
	for k := range n + warmup {
		d, err := submitUntilStarted(c, via, req, dockerTaskBudget)
		if err != nil {
			res.fail("%v", err)
			continue
		}
		if k >= warmup {
			res.ours = append(res.ours, d)
		}
	}
	for k := range n + warmup {
		d, err := timeDocker("run", "--rm", "--network", "none", benchEnvImage(env), "true")
		if err != nil {
			res.fail("%v", err)
			continue
		}
		if k >= warmup {
			res.direct = append(res.direct, d)
		}
	}
	for k := range n + warmup {
		d, err := dockerRunToStart(benchEnvImage(env))
		if err != nil {
			res.fail("%v", err)
			continue
		}
		if k >= warmup {
			res.directStart = append(res.directStart, d)
		}
	}
	slices.Sort(res.ours)
	slices.Sort(res.direct)
	slices.Sort(res.directStart)

	// (b) 100 MB environment.
	big := "hkb-big-" + benchSuffix()
	benchEnvironment(sc, c, benchBusybox, big)
	if _, err := harness.Docker("exec", big, "sh", "-c", fmt.Sprintf("head -c %d /dev/urandom > /big", bigEnvBytes)); err != nil {
		sc.Fatalf("fill %s: %v", big, err)
	}
	tar := benchCreateTar(sc, c, big)
	res.tarBytes = tar.Size
	img := benchEnvImage(big)
	bigReq := api.SubmitRequest{Command: "true", ContainerName: &big, Targets: []string{runner}}
	logPath := c.Runner(runner).LogPath()
	for range syncTrials(s) {
		harness.RemoveImages(sc, img)
		before := len(loadedTook(logPath, big))
		d, err := submitUntilStarted(c, via, bigReq, dockerTaskBudget)
		if err != nil {
			res.fail("%v", err)
		} else {
			res.syncSubmit = append(res.syncSubmit, d)
		}
		if took := loadedTook(logPath, big); len(took) > before {
			res.syncLog = append(res.syncLog, took[len(took)-1])
		} else {
			res.fail("runner log: no new \"environment tarball loaded\" line for %s", big)
		}
		harness.RemoveImages(sc, img)
		d, err = timeDocker("load", "-q", "-i", tar.TarballPath)
		if err != nil {
			res.fail("%v", err)
		} else {
			res.plainLoad = append(res.plainLoad, d)
		}
	}
	slices.Sort(res.syncSubmit)
	slices.Sort(res.syncLog)
	slices.Sort(res.plainLoad)
	return res
}

func ratio(a, b time.Duration) string {
	if a <= 0 || b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", float64(a)/float64(b))
}

func printDocker(out io.Writer, s settings, r dockerResult) {
	if r.skipped != "" {
		fmt.Fprintf(out, "Docker: skipped: %s\n", r.skipped)
		return
	}
	fmt.Fprintf(out, "Docker command task `true` on a warm image (3 replicas + 1 Docker runner %s, submitted one at a time through follower %s; 3 warm-up runs each)\n", r.runner, r.via)
	fmt.Fprintln(out, "(ours = POST /api/submit sent → the task's started_at as the runner reported it (container started); the ratio divides it by the same-endpoint row, exec of `docker run -d --network none <same image> true` → the container's State.StartedAt; `docker run --rm` = wall time of that CLI process, container created, started, exited and removed, so it covers more than ours)")
	tw := table(out)
	fmt.Fprintln(tw, "path\tsamples\tp50 ms\tp99 ms\tmax ms\tours p50 / direct p50\ttarget\tfirst error\t")
	fmt.Fprintf(tw, "hakuriver submit → running\t%d\t%.1f\t%.1f\t%.1f\t%s\t<= 1.1x\t%s\t\n", len(r.ours),
		msf(pctD(r.ours, 0.5)), msf(pctD(r.ours, 0.99)), msf(pctD(r.ours, 1)), ratio(pctD(r.ours, 0.5), pctD(r.directStart, 0.5)), orDash(r.firstErr))
	fmt.Fprintf(tw, "docker run -d → StartedAt\t%d\t%.1f\t%.1f\t%.1f\t-\t-\t-\t\n", len(r.directStart),
		msf(pctD(r.directStart, 0.5)), msf(pctD(r.directStart, 0.99)), msf(pctD(r.directStart, 1)))
	fmt.Fprintf(tw, "docker run --rm wall\t%d\t%.1f\t%.1f\t%.1f\t%s\t-\t-\t\n", len(r.direct),
		msf(pctD(r.direct, 0.5)), msf(pctD(r.direct, 0.99)), msf(pctD(r.direct, 1)), "ours/this "+ratio(pctD(r.ours, 0.5), pctD(r.direct, 0.5)))
	tw.Flush() //nolint:errcheck // stdout

	fmt.Fprintln(out)
	fmt.Fprintf(out, "Tarball sync of a %s MiB environment tarball (busybox + %d random bytes), %d trial(s), the local image deleted before each\n", mib(r.tarBytes), bigEnvBytes, len(r.plainLoad))
	fmt.Fprintln(out, "(submit → running = submit sent → started_at of `true` in that environment, load included; runner load = took= of the runner's \"environment tarball loaded\" log line; docker load = wall time of `docker load -q -i <tarball>`)")
	tw = table(out)
	fmt.Fprintln(tw, "measure\ttrials\tmedian ms\tmin ms\tmax ms\tvs docker load\t")
	row := func(name string, ds []time.Duration) {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t\n", name, len(ds), ms(median(ds)), ms(minD(ds)), ms(maxD(ds)), ratio(median(ds), median(r.plainLoad)))
	}
	row("submit → running (cold)", r.syncSubmit)
	row("runner load (log)", r.syncLog)
	row("docker load -i", r.plainLoad)
	tw.Flush() //nolint:errcheck // stdout
}
