package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/hakuriver/hakuriver-ha/ops/sweep"
)

// maxClusterSweep bounds the tasks of one cluster sweep (the host's array
// limit).
const maxClusterSweep = 10000

func newSweepCmd(g *clientFlags) *cobra.Command {
	o := &submitOptions{}
	var local bool
	var parallel int
	cmd := &cobra.Command{
		Use:   "sweep [flags] -- COMMAND [ARGS...]",
		Short: "Run a command once per combination of span arguments (hakurun)",
		Long: `Expand span arguments into every combination, as the original hakurun
did, and run the command once per combination: on the cluster as one
batch (default) or on this machine (--local).

Span arguments (quote them: bash would expand span:{1..3} itself):
  span:{A..B}     the integers A to B inclusive (A > B: none)
  span:[x,y,z]    the items, split on "," and stripped (no quoting)
  span:REST       the single literal REST
Other arguments stay as they are; the command itself is never expanded.
Combinations come in argument order, the first argument varying slowest.

On the cluster the combinations become one batch: task i runs the command
with combination i and finds i in $HAKURIVER_ARRAY_INDEX and the batch ID
in $HAKURIVER_BATCH_ID. Every "task submit" flag applies to each task
(--cores, --memory, --gpus, --target, --after, --name, --wait, ...);
--throttle N runs at most N of them at once. A sweep creates at most
10000 tasks. The batch ID is printed first, then the task IDs; "task
wait|kill|pause|resume BATCH_ID" and "task list --batch BATCH_ID" act on
the whole batch.

With --local the combinations run here, one after the other, or up to N at
once with --parallel N (0: all at once, as hakurun --parallel); each
start is logged as "Task i/N: CMD". The command fails if any run failed
(the original hakurun exited 0 regardless).`,
		Example: `  hakuriver sweep -- python train.py --lr 'span:[1e-3,1e-4]' --seed 'span:{1..5}'
  hakuriver sweep --cores 4 --gpus 1 --throttle 2 --name lr-sweep -- python train.py --lr 'span:[1e-3,3e-4,1e-4]'
  hakuriver sweep --local --parallel 4 -- ./bench.sh 'span:{1..8}'`,
		Args: commandArgs("hakuriver sweep -- python train.py --lr 'span:[1e-3,1e-4]'"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if local {
				return runLocalSweep(cmd.Context(), args, parallel, cmd.OutOrStdout(), cmd.ErrOrStderr())
			}
			if cmd.Flags().Changed("parallel") {
				return fmt.Errorf("--parallel applies to --local runs only (on the cluster use --throttle N)")
			}
			return runClusterSweep(cmd, g, o, args)
		},
	}
	f := cmd.Flags()
	f.SetInterspersed(false)
	o.addFlags(f)
	// Shared with task submit, but a sweep's tasks are its combinations:
	// kept (it says so when given) and out of the help.
	_ = f.MarkHidden("array") //nolint:errcheck // the flag exists: addFlags added it
	f.BoolVar(&local, "local", false, "run the combinations on this machine instead of the cluster")
	f.IntVar(&parallel, "parallel", 1, "with --local: run up to `N` combinations at once (0: all)")
	f.IntVar(&o.throttle, "throttle", 0, "run at most `N` tasks of the sweep at once (0: no limit)")
	return cmd
}

// expandSweep expands the arguments of COMMAND ARGS... with limit.
func expandSweep(args []string, limit int) ([][]string, error) {
	sets, err := sweep.Expand(args[1:], limit)
	if err != nil {
		return nil, fmt.Errorf("sweep: %w", err)
	}
	if len(sets) == 0 {
		return nil, fmt.Errorf("sweep: no argument combinations generated (an empty span)")
	}
	return sets, nil
}

func runClusterSweep(cmd *cobra.Command, g *clientFlags, o *submitOptions, args []string) error {
	if o.array != "" {
		return fmt.Errorf("--array does not apply to a sweep: its tasks are its combinations (use --throttle N for %%N)")
	}
	if o.throttle < 0 {
		return fmt.Errorf("invalid --throttle %d: must be 0 or more", o.throttle)
	}
	if len(o.targets) > 1 {
		return fmt.Errorf("--target: a sweep takes at most one target")
	}
	sets, err := expandSweep(args, maxClusterSweep)
	if errors.Is(err, sweep.ErrTooMany) {
		return fmt.Errorf("%w (a cluster sweep creates at most %d tasks; --local runs up to %d)", err, maxClusterSweep, sweep.MaxCombinations)
	}
	if err != nil {
		return err
	}
	o.sets = sets
	return runSubmit(cmd, g, o, args)
}

// runLocalSweep runs COMMAND with each combination of its arguments here,
// parallel at once (0: all), and fails if any run failed.
func runLocalSweep(ctx context.Context, args []string, parallel int, stdout, stderr io.Writer) error {
	if parallel < 0 {
		return fmt.Errorf("invalid --parallel %d: must be 0 (all at once) or more", parallel)
	}
	sets, err := expandSweep(args, sweep.MaxCombinations)
	if err != nil {
		return err
	}
	if parallel == 0 || parallel > len(sets) {
		parallel = len(sets)
	}
	log := slog.New(slog.NewTextHandler(stderr, nil)).With("component", "sweep")
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := 0
	var outMu sync.Mutex
	out := &lockedWriter{w: stdout, mu: &outMu}
	errOut := &lockedWriter{w: stderr, mu: &outMu}
	for i, set := range sets {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return fmt.Errorf("sweep: %w", ctx.Err())
		}
		line := shellJoin(append([]string{args[0]}, set...))
		log.Info(fmt.Sprintf("Task %d/%d: %s", i+1, len(sets), line))
		wg.Add(1)
		go func(i int, set []string) {
			defer wg.Done()
			defer func() { <-sem }()
			c := exec.CommandContext(ctx, args[0], set...)
			c.Stdin, c.Stdout, c.Stderr = nil, out, errOut
			c.Env = os.Environ()
			if err := c.Run(); err != nil {
				code := -1
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					code = ee.ExitCode()
				}
				log.Warn(fmt.Sprintf("Task %d (%s) exited with code %d", i+1, line, code), "err", err)
				mu.Lock()
				failed++
				mu.Unlock()
			}
		}(i, set)
	}
	wg.Wait()
	if failed > 0 {
		return fmt.Errorf("sweep: %d of %d runs failed", failed, len(sets))
	}
	log.Info(fmt.Sprintf("All %d tasks finished successfully.", len(sets)))
	return nil
}

// lockedWriter serialises writes of concurrent runs to one writer.
type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// shellJoin quotes words for a log line as a shell would read them.
func shellJoin(words []string) string {
	out := make([]string, len(words))
	for i, w := range words {
		if w != "" && !strings.ContainsAny(w, " \t\n'\"\\$`!*?[]{}()<>|&;#~") {
			out[i] = w
			continue
		}
		out[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
	}
	return strings.Join(out, " ")
}
