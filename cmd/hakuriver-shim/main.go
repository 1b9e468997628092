// Command hakuriver-shim is the supervisor of one native task, the same
// as "hakuriver runner-shim", in a binary that holds only what a
// supervisor needs. A runner starts one supervisor per native task (one
// kept warm ahead of each), and this one starts in a fraction of the CPU
// time the whole hakuriver binary takes (its package initialisation:
// Docker, Raft, Prometheus, the CLI). The runner uses it when it sits
// beside the hakuriver binary and answers --protocol with the runner's own
// supervisor protocol; otherwise the runner runs "hakuriver runner-shim".
//
// It is not for people: "hakuriver-shim TASK_DIR" supervises the task in
// that directory, "hakuriver-shim -" waits warm for one.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/hakuriver/hakuriver-ha/runner/executor/native"
)

func main() {
	if len(os.Args) == 2 && os.Args[1] == "--protocol" {
		fmt.Println(native.ShimProtocol)
		return
	}
	if len(os.Args) != 2 || os.Args[1] != native.WarmArg && strings.HasPrefix(os.Args[1], "-") {
		fmt.Fprintln(os.Stderr, "usage: hakuriver-shim TASK_DIR (started by a hakuriver runner; not for people)")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := native.RunShim(ctx, os.Args[1])
	stop()
	os.Exit(code)
}
