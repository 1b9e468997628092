package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/cluster/notify"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// newTaskCmd builds "hakuriver task": submit, status, list, logs, wait,
// kill, pause and resume.
func newTaskCmd(g *clientFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "task",
		Short: "Submit, inspect, follow and control command tasks",
		Long: `Submit command tasks to the cluster and follow them: their status, their
output, their end; kill, pause and resume them.

Every task command talks to the host replicas given by --host (or
$HAKURIVER_HOST) and tries the next replica when one is down.`,
		Example: `  hakuriver task submit --target node1 --cores 2 -- python train.py --epochs 3
  hakuriver task submit --gpus 1 --array 0-9%2 --time-limit 2h -- python sweep.py
  hakuriver task list --status running
  hakuriver task status 1790263384729600000
  hakuriver task logs --follow 1790263384729600000
  hakuriver task wait 1790263384729600000
  hakuriver task kill 1790263384729600000`,
	}
	cmd.AddCommand(newTaskSubmitCmd(g), newTaskStatusCmd(g), newTaskListCmd(g), newTaskLogsCmd(g),
		newTaskWaitCmd(g), newTaskKillCmd(g), newTaskPauseCmd(g), newTaskResumeCmd(g), newTaskExecCmd(g))
	return cmd
}

// submitOptions holds the flags of "task submit".
type submitOptions struct {
	targets    []string
	cores      int
	memory     string
	gpus       string
	priority   int
	array      string
	timeLimit  string
	after      []string
	container  string
	env        []string
	workdir    string
	privileged bool
	mounts     []string
	requestID  string
	name       string
	notify     string
	// sets and throttle are a sweep's argument sets and its --throttle
	// (sweep.go); nil for a plain submit.
	sets         [][]string
	throttle     int
	wait         bool
	pollInterval time.Duration
	// retries, retryDelay and retryOn are --retries, --retry-delay and
	// --retry-on (sent only when given).
	retries    int
	retryDelay string
	retryOn    []string
}

func newTaskSubmitCmd(g *clientFlags) *cobra.Command {
	o := &submitOptions{}
	cmd := &cobra.Command{
		Use:   "submit [flags] -- COMMAND [ARGS...]",
		Short: "Submit a command task, one per --target",
		Long: `Submit a command task. Everything after "--" (or after the first word that
is not a flag) is the command and its arguments.

Each --target creates one task of the batch. A target is
HOST[:NUMA][::GPU,GPU...]: "node1", "node1:0" (bind to NUMA node 0),
"node1::0,1" (GPUs 0 and 1), "node1:1::2,3". Without --target the
scheduler places the task on an online node that fits it. --gpus N asks
for N free GPUs on whichever node runs the task; it is a count, not a list
of IDs, and cannot be combined with GPU IDs in a target.

--memory takes bytes with an optional suffix: K, M, G (powers of 10) or
Ki, Mi, Gi (powers of 2), case-insensitive.

A task that does not fit the free capacity yet waits pending in the queue
("hakuriver queue" shows why) and starts once resources free up: higher
--priority first (-1000..1000, default 0), then in submission order.

--array SPEC submits one task per index, as Slurm's --array does: "0-99",
"1,3,5", "0-3,8" or "0-99%8" (at most 8 of them running at once). Each
task finds its index in $HAKURIVER_ARRAY_INDEX and the batch ID in
$HAKURIVER_BATCH_ID. An array takes at most one --target.

--time-limit kills a task that runs longer and marks it killed. It takes a
duration such as 90s, 90m or 1h30m, or plain seconds; parts of a second
are rounded up; 0 means no limit.

--after ID[,ID...] holds the tasks pending until every named task has
completed; when one of them ends otherwise, the tasks fail naming it.

--retries N (0..100) runs a task again, under the same task ID, up to N
more times when an attempt ends in a status named by --retry-on: "exit"
(it ran and exited non-zero), "lost" (its runner lost it) or "oom"
(killed for exceeding --memory); default exit,lost. Each retry waits
--retry-delay (e.g. 30s, 5m; up to 24h) and is then queued as usual.
"task status" lists every attempt (node, exit code, times); killing the
task stops its retries; "task wait" waits for the last attempt. A task
finds its attempt number in $HAKURIVER_ATTEMPT.

The task IDs are printed one per line. With --wait the command also waits
until every task has finished and fails unless all of them completed, as
"hakuriver task wait" does (a single task that failed with an exit code
makes the command exit with that code).

--notify URL makes the leader POST each task's final status (completed,
failed, killed, killed_oom, lost) to URL as signed JSON, retried with
backoff until the receiver answers 2xx; "task status" shows the delivery
state. An admin must allow the URL's prefix in the hosts' config
([notify] webhook_allow), else the submit is refused.`,
		Example: `  hakuriver task submit -- echo hello
  hakuriver task submit --target node1 --target node2 --cores 4 --memory 8G -- ./sweep.sh
  hakuriver task submit --target gpu1::0,1 --container pytorch -- python train.py
  hakuriver task submit --gpus 2 --priority 10 --time-limit 12h -- python train.py
  hakuriver task submit --array 0-99%8 -- ./process.sh
  hakuriver task submit --after 1790263384729600000 -- ./report.sh
  hakuriver task submit --retries 3 --retry-delay 1m --retry-on exit,oom -- ./flaky.sh
  hakuriver task submit --container NULL --env OMP_NUM_THREADS=4 --wait -- make test`,
		Args: commandArgs("hakuriver task submit -- echo hello"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSubmit(cmd, g, o, args)
		},
	}
	f := cmd.Flags()
	f.SetInterspersed(false)
	o.addFlags(f)
	return cmd
}

// addFlags registers the flags of "task submit" (shared with "sweep").
func (o *submitOptions) addFlags(f *pflag.FlagSet) {
	f.StringArrayVar(&o.targets, "target", nil, "target HOST[:NUMA][::GPU,GPU...]; repeat for one task per target")
	f.IntVar(&o.cores, "cores", 1, "CPU cores per task (0: no limit)")
	f.StringVar(&o.memory, "memory", "", "memory limit per task, e.g. 512M, 4G, 2Gi (default: no limit)")
	f.StringVar(&o.gpus, "gpus", "", "`N` free GPUs per task, on whichever node runs it (GPU IDs go in --target HOST::ID,ID)")
	f.IntVar(&o.priority, "priority", 0, "queue priority, -1000..1000; higher starts first")
	f.StringVar(&o.array, "array", "", "array job: one task per index of `SPEC`, e.g. 0-99, 1,3,5 or 0-99%8 (at most 8 running)")
	f.StringVar(&o.timeLimit, "time-limit", "", "kill a task that runs longer than `DURATION`, e.g. 90m, 2h or 3600 (seconds) (default: no limit)")
	f.StringArrayVar(&o.after, "after", nil, "start only once the tasks `ID[,ID...]` have completed; repeatable")
	f.StringVar(&o.container, "container", "", "container environment name, or NULL to run natively (default: host default)")
	f.StringArrayVar(&o.env, "env", nil, "environment variable KEY=VALUE; repeatable")
	f.StringVar(&o.workdir, "workdir", "", "working directory of the task")
	f.BoolVar(&o.privileged, "privileged", false, "run the container privileged (default: host default)")
	f.StringArrayVar(&o.mounts, "mount", nil, "extra bind mount HOST:CONTAINER[:OPTS]; repeatable; replaces the host's default mounts")
	f.StringVar(&o.name, "name", "", "label the task(s) with `NAME` (1-64 of a-z A-Z 0-9 . _ -); status, logs, wait and kill take it where unambiguous")
	f.StringVar(&o.notify, "notify", "", "POST each task's final status to `URL` (signed JSON; the URL must start with a prefix the admin allowed in the hosts' notify.webhook_allow)")
	f.StringVar(&o.requestID, "request-id", "", "idempotency key: resubmitting with the same ID creates nothing new (default: random)")
	f.IntVar(&o.retries, "retries", 0, "run a task again up to `N` times (0..100) when an attempt ends as --retry-on says")
	f.StringVar(&o.retryDelay, "retry-delay", "", "wait `DURATION` (e.g. 30s, 5m; at most 24h) before each retry (default: none)")
	f.StringSliceVar(&o.retryOn, "retry-on", nil, "retry on `exit|lost|oom`: a non-zero exit, a lost task, an OOM kill; repeatable or comma list (default: exit,lost)")
	f.BoolVar(&o.wait, "wait", false, "wait until every task finishes; fail unless all completed")
	f.DurationVar(&o.pollInterval, "poll-interval", time.Second, "time between two reads of every unfinished task with --wait (between them, the first unfinished task is followed: its changes are seen at once)")
}

func runSubmit(cmd *cobra.Command, g *clientFlags, o *submitOptions, args []string) error {
	format, err := g.format()
	if err != nil {
		return err
	}
	req, err := o.request(cmd, args)
	if err != nil {
		return err
	}
	if o.wait && o.pollInterval <= 0 {
		return fmt.Errorf("invalid --poll-interval %s: must be positive", o.pollInterval)
	}
	c, err := g.client()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := g.call(cmd.Context())
	resp, err := c.Submit(ctx, req)
	cancel()
	if err != nil {
		return err
	}
	out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
	if format == outputTable {
		for _, f := range resp.FailedTargets {
			fmt.Fprintf(errOut, "warning: target %s failed: %s\n", f.Target, f.Reason)
		}
		if o.sets != nil && resp.BatchID != "" {
			fmt.Fprintln(out, resp.BatchID) // a sweep: the batch ID first
		} else if resp.BatchID != "" && len(resp.TaskIDs) > 1 {
			// An array: standard output keeps one task ID a line.
			fmt.Fprintf(errOut, "batch %s (%d tasks): task status, wait and kill take it\n", resp.BatchID, len(resp.TaskIDs))
		}
		for _, id := range resp.TaskIDs {
			fmt.Fprintln(out, id)
		}
	}
	if len(resp.TaskIDs) == 0 {
		if format == outputJSON {
			if err := printJSON(out, resp); err != nil {
				return err
			}
		}
		return fmt.Errorf("no task created: %s", resp.Message)
	}
	if !o.wait {
		if format == outputJSON {
			return printJSON(out, resp)
		}
		return nil
	}
	tasks, err := waitTasks(cmd.Context(), g, c, resp.TaskIDs, o.pollInterval, errOut, errOut)
	if err != nil {
		return err
	}
	if format == outputJSON {
		if err := printJSON(out, submitWaitOutput{SubmitResponse: resp, Tasks: tasks}); err != nil {
			return err
		}
	}
	return notCompleted(tasks)
}

// submitWaitOutput is the JSON output of "task submit --wait": the submit
// answer plus every task in its final state.
type submitWaitOutput struct {
	api.SubmitResponse
	Tasks []fsm.Task `json:"tasks"`
}

// request builds the submit body from the flags and the command line.
func (o *submitOptions) request(cmd *cobra.Command, args []string) (api.SubmitRequest, error) {
	req := api.SubmitRequest{
		TaskType:  string(fsm.TaskCommand),
		Command:   args[0],
		Arguments: args[1:],
		WorkDir:   o.workdir,
		RequestID: strings.TrimSpace(o.requestID),
		Name:      o.name,
		Notify:    strings.TrimSpace(o.notify),
	}
	if req.Notify != "" {
		if err := notify.CheckURL(req.Notify); err != nil {
			return req, fmt.Errorf("invalid --notify %q: %w", req.Notify, err)
		}
	}
	if o.name != "" && !fsm.ValidTaskName(o.name) {
		return req, fmt.Errorf("invalid --name %q: want 1-%d letters, digits, '.', '_' or '-', starting with a letter or digit and not all digits", o.name, fsm.MaxTaskNameLen)
	}
	if strings.TrimSpace(req.Command) == "" {
		return req, fmt.Errorf("empty command: give it after --")
	}
	if o.cores < 0 {
		return req, fmt.Errorf("invalid --cores value %d: must be 0 or more", o.cores)
	}
	cores := o.cores
	req.RequiredCores = &cores
	if o.memory != "" {
		n, err := parseMemory(o.memory)
		if err != nil {
			return req, fmt.Errorf("invalid --memory value %q: %w", o.memory, err)
		}
		req.RequiredMemoryBytes = &n
	}
	if err := o.addTargets(&req); err != nil {
		return req, err
	}
	if err := o.addScheduling(&req); err != nil {
		return req, err
	}
	env, err := parseEnv(o.env)
	if err != nil {
		return req, err
	}
	req.EnvVars = env
	if cmd.Flags().Changed("container") {
		name := strings.TrimSpace(o.container)
		if name == "" {
			return req, fmt.Errorf("invalid --container value: give an environment name or NULL")
		}
		req.ContainerName = &name
	}
	if cmd.Flags().Changed("privileged") {
		p := o.privileged
		req.Privileged = &p
	}
	if err := checkMountFlags(o.mounts); err != nil {
		return req, err
	}
	if err := o.addRetries(&req); err != nil {
		return req, err
	}
	req.AdditionalMounts = o.mounts
	if o.sets != nil {
		req.Arguments, req.ArgumentSets = nil, o.sets
		if o.throttle > 0 {
			req.Array = fmt.Sprintf("0-%d%%%d", len(o.sets)-1, o.throttle)
		}
	}
	return req, nil
}

// addTargets fills req.Targets and req.RequiredGPUs from --target, and
// req.GPUCount from --gpus, which cannot be combined with GPU IDs in a
// target.
func (o *submitOptions) addTargets(req *api.SubmitRequest) error {
	if o.gpus != "" {
		n, err := strconv.Atoi(strings.TrimSpace(o.gpus))
		if err != nil || n < 0 {
			return fmt.Errorf("invalid --gpus value %q: want a GPU count such as 2 (GPU IDs go in the target: --target HOST::0,1)", o.gpus)
		}
		req.GPUCount = n
	}
	gpus := make([][]int, 0, len(o.targets))
	anyGPU := false
	for _, t := range o.targets {
		host, ids, err := api.ParseTarget(t)
		if err != nil {
			return fmt.Errorf("invalid --target value %q: %w", t, err)
		}
		if ids == nil {
			ids = []int{}
		}
		if len(ids) > 0 && req.GPUCount > 0 {
			return fmt.Errorf("--gpus %d and GPU IDs in --target %q: give a GPU count or GPU IDs, not both", req.GPUCount, t)
		}
		anyGPU = anyGPU || len(ids) > 0
		req.Targets = append(req.Targets, host)
		gpus = append(gpus, ids)
	}
	if anyGPU {
		req.RequiredGPUs = gpus
	}
	return nil
}

// parseMemory parses a --memory value (api.ParseMemory).
func parseMemory(s string) (int64, error) { return api.ParseMemory(s) }

// parseEnv turns KEY=VALUE items into a map (split at the first "=", key
// trimmed and required).
func parseEnv(items []string) (map[string]string, error) {
	if len(items) == 0 {
		return nil, nil
	}
	env := make(map[string]string, len(items))
	for _, item := range items {
		k, v, ok := strings.Cut(item, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" || strings.ContainsAny(k, " \t\n") {
			return nil, fmt.Errorf("invalid --env value %q: want KEY=VALUE", item)
		}
		env[k] = v
	}
	return env, nil
}

func newTaskStatusCmd(g *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "status TASK_ID|BATCH_ID|NAME",
		Short: "Show one task, or a batch's summary",
		Long: `Show one task's command, resources, placement, status and timestamps,
and for a pending task what it waits for (as "hakuriver queue" says).
With --output json it prints the task as the API returns it.

Given a batch ID it prints the batch's summary, as "task list --batch"
does. A task name works where only one task, or one batch, has it.`,
		Example: `  hakuriver task status 1790263384729600000
  hakuriver task status 1790263384729600000 -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *api.Client, format string) error {
				ref, err := resolveRef(ctx, c, args[0], false)
				if err != nil {
					return err
				}
				if ref.batch {
					tasks, err := batchTasks(ctx, c, ref.id)
					if err != nil {
						return err
					}
					sum := summarizeBatch(ref.id, tasks)
					if format == outputJSON {
						return printJSON(cmd.OutOrStdout(), sum)
					}
					_, err = fmt.Fprintln(cmd.OutOrStdout(), sum.String())
					return err
				}
				t := *ref.task
				if format == outputJSON {
					return printJSON(cmd.OutOrStdout(), t)
				}
				return printTaskWaiting(cmd.OutOrStdout(), t, waitingReason(ctx, c, t))
			})
		},
	}
}

// waitingReason is what a pending task waits for, as the queue says ("" when
// it is not pending or the queue cannot be read: the status still prints).
func waitingReason(ctx context.Context, c *api.Client, t fsm.Task) string {
	if t.Status != fsm.StatusPending {
		return ""
	}
	q, err := c.Queue(ctx)
	if err != nil {
		return ""
	}
	id := strconv.FormatInt(t.TaskID, 10)
	for _, e := range q {
		if e.TaskID == id {
			return e.Reason
		}
	}
	return ""
}

// printTask writes a task as aligned "Key: value" lines.
func printTask(w io.Writer, t fsm.Task) error { return printTaskWaiting(w, t, "") }

// printTaskWaiting is printTask with what a pending task waits for.
func printTaskWaiting(w io.Writer, t fsm.Task, waiting string) error {
	tw := newTable(w)
	kv := func(k, v string) { row(tw, k+":", orDash(v)) }
	kv("Task ID", strconv.FormatInt(t.TaskID, 10))
	if t.Name != "" {
		kv("Name", t.Name)
	}
	kv("Type", string(t.TaskType))
	if t.BatchID != 0 {
		kv("Batch ID", strconv.FormatInt(t.BatchID, 10))
	}
	kv("Status", string(t.Status))
	retryRows(kv, t)
	kv("Owner", t.Owner)
	runAs := t.RunAs
	switch {
	case t.TaskType == fsm.TaskVPS:
		runAs = "root inside its container (VPS containers run as root)"
	case runAs == "" && t.AllowRoot:
		runAs = "runner default (runner_user; a Docker image's own user)"
	case runAs == "":
		runAs = "runner_user unless it is root, else nobody (65534:65534)"
	}
	kv("Runs as", runAs)
	if waiting != "" {
		kv("Waiting for", waiting)
	}
	kv("Command", commandLine(t.Command, t.Arguments))
	node := t.AssignedNode
	if node == "" && t.TargetNode != "" {
		node = t.TargetNode + " (target)"
	}
	kv("Node", node)
	if t.TargetNUMANodeID != nil {
		kv("NUMA node", strconv.Itoa(*t.TargetNUMANodeID))
	}
	schedulingRows(kv, t)
	kv("Cores", strconv.Itoa(t.RequiredCores))
	mem := formatBytes(t.RequiredMemoryBytes)
	if t.RequiredMemoryBytes > 0 {
		mem += fmt.Sprintf(" (%d bytes)", t.RequiredMemoryBytes)
	}
	kv("Memory", mem)
	gpus := formatInts(t.RequiredGPUs)
	if t.GPUCount > 0 && len(t.RequiredGPUs) == 0 {
		gpus = fmt.Sprintf("%d (any free)", t.GPUCount)
	}
	kv("GPUs", gpus)
	kv("Container", t.ContainerName)
	kv("Privileged", strconv.FormatBool(t.Privileged))
	kv("Working dir", t.WorkDir)
	env := make([]string, 0, len(t.EnvVars))
	for _, k := range slices.Sorted(maps.Keys(t.EnvVars)) {
		env = append(env, k+"="+t.EnvVars[k])
	}
	kv("Env", strings.Join(env, " "))
	kv("Mounts", strings.Join(t.AdditionalMounts, " "))
	if t.ExitCode != nil {
		kv("Exit code", strconv.Itoa(*t.ExitCode))
	} else {
		kv("Exit code", "")
	}
	kv("Error", t.ErrorMessage)
	kv("Submitted", formatTime(t.SubmittedAt))
	kv("Started", formatTimePtr(t.StartedAt))
	kv("Completed", formatTimePtr(t.CompletedAt))
	notificationRows(tw, &t)
	usageRows(kv, t)
	for i, p := range t.Placements {
		k := ""
		if i == 0 {
			k = "Placements:"
		}
		row(tw, k, fmt.Sprintf("%s %s %s", formatTime(p.At()), p.Event, p.Node))
	}
	attemptRows(tw, t)
	if t.TaskType == fsm.TaskVPS {
		port := ""
		if t.SSHPort != 0 {
			port = strconv.Itoa(t.SSHPort)
		}
		kv("SSH port", port)
	} else {
		kv("Stdout", t.StdoutPath)
		kv("Stderr", t.StderrPath)
	}
	return flushTable(tw)
}

// listOptions holds the flags of "task list".
type listOptions struct {
	status string
	node   string
	batch  string
	limit  int
	after  string
	user   string
	mine   bool
	// typ and text filter by task type and command line text.
	typ  string
	text string
}

func newTaskListCmd(g *clientFlags) *cobra.Command {
	o := &listOptions{}
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List tasks, newest first",
		Long: `List tasks, newest first, optionally filtered by status, node, batch,
type, text in the command line (--text) or owner (--user NAME, or --mine
for the account of your token).
When the page holds tasks of an array job (task submit --array) an ARRAY
column shows each task's index, with "%N" when at most N run at once; the
tasks of one array share a batch ID, so --batch lists a whole array (or sweep) and ends with the batch's
summary: its tasks counted by status and the array indexes of those that
did not complete (when --batch is the only filter).

EXIT is the task's exit code ("-" until it ends, and for a task killed
before it started or lost); ELAPSED how long it ran, to now while it
runs, as [D-]HH:MM:SS ("-" if it never started).

The host returns one page at a time. When more tasks exist a footer says
so and gives the --after value that fetches the next page.

--output csv prints one accounting record per task (owner, status, exit
code, signal, node, cores, GPUs, times, elapsed, CPU user/system seconds
and peak memory as the runner measured them), like Slurm's sacct.`,
		Example: `  hakuriver task list
  hakuriver task list --status running --node node1
  hakuriver task list --batch 1790263384729600000
  hakuriver task list --mine --status running
  hakuriver task list --user alice
  hakuriver task list --text train.py --type command
  hakuriver task list --limit 50 --after 1790263384729600000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runTaskList(cmd, g, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.status, "status", "", "only tasks in this status ("+statusNames()+")")
	f.StringVar(&o.node, "node", "", "only tasks placed on this node")
	f.StringVar(&o.batch, "batch", "", "only tasks of this batch ID")
	f.IntVar(&o.limit, "limit", 0, "page size (default: the host's)")
	f.StringVar(&o.after, "after", "", "start after this task ID (from the previous page's footer)")
	f.StringVar(&o.user, "user", "", "only tasks owned by this account")
	f.BoolVar(&o.mine, "mine", false, "only tasks owned by your account (the one your token authenticates)")
	f.StringVar(&o.typ, "type", "", "only tasks of this type (command or vps)")
	f.StringVar(&o.text, "text", "", "only tasks whose command line contains this text (case-sensitive)")
	cmd.MarkFlagsMutuallyExclusive("user", "mine")
	return cmd
}

// statusNames lists the task statuses for help and error texts.
func statusNames() string {
	var s []string
	for _, st := range append(fsm.AllStatuses(), fsm.StatusStopped) {
		s = append(s, string(st))
	}
	return strings.Join(s, ", ")
}

func runTaskList(cmd *cobra.Command, g *clientFlags, o *listOptions) error {
	csvOut := g.output == outputCSV
	if csvOut {
		g.output = outputTable // the shared flag knows table and json
	}
	format, err := g.format()
	if err != nil {
		return err
	}
	if o.status != "" && !fsm.Status(o.status).Valid() {
		return fmt.Errorf("invalid --status %q: want one of %s", o.status, statusNames())
	}
	if o.limit < 0 {
		return fmt.Errorf("invalid --limit %d: must be 0 or more", o.limit)
	}
	if o.user != "" && !fsm.NameRE().MatchString(o.user) {
		return fmt.Errorf("invalid --user %q: not an account name", o.user)
	}
	var tasks []fsm.Task
	var page api.Page
	err = g.withClient(cmd, func(ctx context.Context, c *api.Client, _ string) error {
		user := o.user
		if o.mine {
			who, err := c.WhoAmI(ctx)
			if err != nil {
				return fmt.Errorf("--mine: %w", err)
			}
			user = who.User
		}
		var err error
		tasks, page, err = c.Tasks(ctx, api.TaskQuery{Status: o.status, Node: o.node, Batch: o.batch, Limit: o.limit, After: o.after, User: user, Type: o.typ, Text: o.text})
		return err
	})
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	footer := ""
	if page.More {
		footer = "More tasks exist."
		if page.NextAfter != "" {
			footer = fmt.Sprintf("More tasks exist: run again with --after %s for the next page.", page.NextAfter)
		}
	}
	if format == outputJSON || csvOut {
		if tasks == nil {
			tasks = []fsm.Task{}
		}
		if footer != "" {
			fmt.Fprintln(cmd.ErrOrStderr(), footer)
		}
		if csvOut {
			return printTaskCSV(out, tasks)
		}
		return printJSON(out, tasks)
	}
	if err := printTaskList(out, tasks); err != nil {
		return err
	}
	onlyBatch := o.after == "" && o.status == "" && o.node == "" && o.user == "" && !o.mine && o.typ == "" && o.text == ""
	if o.batch != "" && len(tasks) > 0 && onlyBatch {
		all := tasks
		if page.More {
			// The page is not the whole batch: read it all.
			err := g.withClient(cmd, func(ctx context.Context, c *api.Client, _ string) error {
				var err error
				all, err = batchTasks(ctx, c, o.batch)
				return err
			})
			if err != nil {
				return err
			}
		}
		fmt.Fprintln(out, summarizeBatch(o.batch, all).String())
	}
	if footer != "" {
		fmt.Fprintln(out, footer)
	}
	return nil
}

// printTaskList writes the task table. The ARRAY column, each task's place
// in its array job as BATCH[INDEX], is shown only when some task of the page
// belongs to an array job.
func printTaskList(w io.Writer, tasks []fsm.Task) error {
	if len(tasks) == 0 {
		if _, err := fmt.Fprintln(w, "No tasks."); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
		return nil
	}
	arrays := slices.ContainsFunc(tasks, func(t fsm.Task) bool { return t.ArrayIndex != nil })
	names := slices.ContainsFunc(tasks, func(t fsm.Task) bool { return t.Name != "" })
	retried := slices.ContainsFunc(tasks, func(t fsm.Task) bool { return t.Retries > 0 })
	now := time.Now()
	tw := newTable(w)
	head := []string{"TASK ID", "STATUS", "NODE", "CORES", "OWNER", "EXIT", "ELAPSED", "SUBMITTED", "COMMAND"}
	if retried {
		head = slices.Insert(head, 2, "ATTEMPT")
	}
	if arrays {
		head = slices.Insert(head, 1, "ARRAY")
	}
	if names {
		head = slices.Insert(head, 1, "NAME")
	}
	row(tw, head...)
	for _, t := range tasks {
		node := t.AssignedNode
		if node == "" {
			node = t.TargetNode
		}
		cells := []string{strconv.FormatInt(t.TaskID, 10), string(t.Status), orDash(node),
			strconv.Itoa(t.RequiredCores), orDash(t.Owner), exitLabel(t), elapsedLabel(t, now), formatTime(t.SubmittedAt),
			truncate(commandLine(t.Command, t.Arguments), 60)}
		if retried {
			cells = slices.Insert(cells, 2, attemptCell(t))
		}
		if arrays {
			cells = slices.Insert(cells, 1, arrayLabel(t))
		}
		if names {
			cells = slices.Insert(cells, 1, orDash(t.Name))
		}
		row(tw, cells...)
	}
	return flushTable(tw)
}

// exitLabel is a task's exit code for the list, "-" while it has none
// (not ended, or ended without one: killed before it started, lost).
func exitLabel(t fsm.Task) string {
	if t.ExitCode == nil {
		return "-"
	}
	return strconv.Itoa(*t.ExitCode)
}

// elapsedLabel is how long a task ran (to now while it runs), as sacct
// prints it: [D-]HH:MM:SS; "-" for a task that never started.
func elapsedLabel(t fsm.Task, now time.Time) string {
	if t.StartedAt == nil {
		return "-"
	}
	d := fsm.TaskElapsed(&t, now).Round(time.Second)
	days, rest := d/(24*time.Hour), d%(24*time.Hour)
	hms := fmt.Sprintf("%02d:%02d:%02d", int(rest/time.Hour), int(rest%time.Hour/time.Minute), int(rest%time.Minute/time.Second))
	if days > 0 {
		return fmt.Sprintf("%d-%s", days, hms)
	}
	return hms
}

// arrayLabel renders a task's place in its array job as BATCH[INDEX], e.g.
// "2001[3]", or "-" for a task outside an array job. The batch's throttle
// (%N at submit) is not shown here, where "3%8" read like a modulo; `task
// status` shows it in words.
func arrayLabel(t fsm.Task) string {
	if t.ArrayIndex == nil {
		return "-"
	}
	return strconv.FormatInt(t.BatchID, 10) + "[" + strconv.Itoa(*t.ArrayIndex) + "]"
}

func newTaskKillCmd(g *clientFlags) *cobra.Command {
	return refActionCmd(g, &cobra.Command{
		Use:   "kill TASK_ID|BATCH_ID|NAME",
		Short: "Kill a task, or every task of a batch",
		Long: `Kill a pending, assigning, running or paused task. The task is marked
killed at once and its runner stops it. Killing a finished task fails.

Given a batch ID (printed by "hakuriver sweep", shown by "task status" as
Batch ID), it kills every task of the batch that has not finished yet, in
one call. --batch takes the ID as a batch ID in any case (needed for
batches submitted before batch IDs of their own, which share their first
task's ID). A task name works where only one task, or one batch, has it.`,
		Example: `  hakuriver task kill 1790263384729600000
  hakuriver task kill --batch 1790263384729600000
  hakuriver task kill lr-sweep`,
	}, "kill", (*api.Client).Kill)
}

func newTaskPauseCmd(g *clientFlags) *cobra.Command {
	return refActionCmd(g, &cobra.Command{
		Use:   "pause TASK_ID|BATCH_ID|NAME",
		Short: "Pause a running task, or the running tasks of a batch",
		Long: `Pause a running task: its runner freezes the task's processes until
"hakuriver task resume". Pausing a task that is not running fails, as does
pausing while its runner is offline. Given a batch ID (or --batch), it
pauses every running task of the batch.`,
		Example: `  hakuriver task pause 1790263384729600000`,
	}, "pause", (*api.Client).Pause)
}

func newTaskResumeCmd(g *clientFlags) *cobra.Command {
	return refActionCmd(g, &cobra.Command{
		Use:   "resume TASK_ID|BATCH_ID|NAME",
		Short: "Resume a paused task, or the paused tasks of a batch",
		Long: `Resume a task paused by "hakuriver task pause". Resuming a task that is
not paused fails, as does resuming while its runner is offline. Given a
batch ID (or --batch), it resumes every paused task of the batch.`,
		Example: `  hakuriver task resume 1790263384729600000`,
	}, "resume", (*api.Client).Resume)
}

// refActionCmd completes a kill/pause/resume command: its argument is
// resolved (resolveRef) and the action goes to the task or to the batch.
func refActionCmd(g *clientFlags, cmd *cobra.Command, action string, call func(*api.Client, context.Context, string) (api.MessageResponse, error)) *cobra.Command {
	var batch bool
	cmd.Args = cobra.ExactArgs(1)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return g.withClient(cmd, func(ctx context.Context, c *api.Client, format string) error {
			ref, err := actionRef(ctx, c, args[0], batch)
			if err != nil {
				return err
			}
			if !ref.batch {
				resp, err := call(c, ctx, ref.id)
				if api.StatusCode(err) == http.StatusNotFound && isNumeric(ref.id) {
					// Not a task: perhaps a batch.
					if in, _, lerr := c.Tasks(ctx, api.TaskQuery{Batch: ref.id, Limit: 1}); lerr == nil && len(in) > 0 {
						ref.batch = true
					}
				}
				if !ref.batch {
					if err != nil {
						return err
					}
					return printMessage(cmd.OutOrStdout(), format, resp)
				}
			}
			resp, err := c.BatchAction(ctx, ref.id, action)
			if err != nil {
				return err
			}
			if format == outputJSON {
				if err := printJSON(cmd.OutOrStdout(), resp); err != nil {
					return err
				}
			} else {
				fmt.Fprintln(cmd.OutOrStdout(), resp.Message)
				printBatchFailures(cmd.ErrOrStderr(), resp.Failed)
			}
			if len(resp.Failed) > 0 {
				return fmt.Errorf("%s failed for %d tasks of batch %s", action, len(resp.Failed), ref.id)
			}
			return nil
		})
	}
	cmd.Flags().BoolVar(&batch, "batch", false, "take the ID as a batch ID")
	return cmd
}

// maxFailureLines bounds the lines printBatchFailures writes: a batch
// action on 10,000 tasks that failed for one reason (the leader changed)
// must not print 10,000 lines.
const maxFailureLines = 10

// printBatchFailures writes a batch action's failures grouped by reason,
// in the order the reasons first appear, with at most 3 task IDs each and
// at most maxFailureLines lines; --output json lists every one.
func printBatchFailures(w io.Writer, failed []api.FailedTask) {
	var reasons []string
	ids := map[string][]string{}
	for _, f := range failed {
		if _, ok := ids[f.Reason]; !ok {
			reasons = append(reasons, f.Reason)
		}
		ids[f.Reason] = append(ids[f.Reason], f.TaskID)
	}
	for i, r := range reasons {
		if i == maxFailureLines {
			rest := 0
			for _, r := range reasons[i:] {
				rest += len(ids[r])
			}
			fmt.Fprintf(w, "... %d more tasks failed for %d other reasons (--output json lists every one)\n", rest, len(reasons)-i)
			return
		}
		list := ids[r]
		if len(list) == 1 {
			fmt.Fprintf(w, "task %s: %s\n", list[0], r)
			continue
		}
		shown := strings.Join(list[:min(3, len(list))], ", ")
		if len(list) > 3 {
			shown += fmt.Sprintf(" and %d more", len(list)-3)
		}
		fmt.Fprintf(w, "%d tasks (%s): %s\n", len(list), shown, r)
	}
}

// printMessage prints a {"message"} answer as text or JSON.
func printMessage(w io.Writer, format string, m api.MessageResponse) error {
	if format == outputJSON {
		return printJSON(w, m)
	}
	if _, err := fmt.Fprintln(w, m.Message); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// checkMountFlags checks --mount values with the host's own parser, so the
// CLI refuses what a submit would.
func checkMountFlags(mounts []string) error {
	for _, m := range mounts {
		if _, err := api.ParseMount(m); err != nil {
			return fmt.Errorf("invalid --mount value: %w", err)
		}
	}
	return nil
}

// commandArgs requires a command to run, naming an example when there is
// none.
func commandArgs(example string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) == 0 {
			return fmt.Errorf("no command given: put the command to run after --, like: %s", example)
		}
		return nil
	}
}
