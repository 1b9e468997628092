// Command hakuriver is the single binary of HakuRiver HA: host replicas,
// runner agents, the embedded dev cluster and the client CLI.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/hakuriver/hakuriver-ha/runner/executor/native"
)

func main() {
	os.Exit(run())
}

func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if dir, ok := shimArg(os.Args); ok {
		// A native task's supervisor, started for every task: skip
		// building the command tree (a sixth of its start-up CPU).
		return native.RunShim(ctx, dir)
	}
	root := newRootCmd()
	if err := root.ExecuteContext(ctx); err != nil {
		var ec *exitCodeError
		if errors.As(err, &ec) && ec.msg == "" {
			return ec.ExitCode() // a remote command's own exit code: nothing to add
		}
		fmt.Fprintln(os.Stderr, "Error:", err)
		if errors.As(err, &ec) {
			return ec.ExitCode()
		}
		return 1
	}
	return 0
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "hakuriver",
		Short:         "HakuRiver HA: run command jobs and VPS containers on a small lab cluster",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	g := addClientFlags(root)
	root.AddCommand(
		newHostCmd(),
		newRunnerCmd(),
		newShimCmd(),
		newRunnerFilesCmd(),
		newDevCmd(g),
		newConfigCmd(),
		newInitCmd(),
		newTaskCmd(g),
		newSweepCmd(g),
		newNodeCmd(g),
		newClusterCmd(g),
		newQueueCmd(g),
		newQuotaCmd(g),
		newUsageCmd(g),
		newDockerCmd(g),
		newSSHCmd(g),
		newForwardCmd(g),
		newCpCmd(g),
		newConnectCmd(g),
		newVPSCmd(g),
		newDoctorCmd(g),
		newAuthCmd(g),
		newUserCmd(g),
		newGroupCmd(g),
		newTokenCmd(g),
		newAuditCmd(g),
		newTLSCmd(g),
	)
	return root
}
