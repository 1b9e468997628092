package main

import (
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hakuriver/hakuriver-ha/runner/executor/native"
)

// newShimCmd builds the hidden "hakuriver runner-shim <task-dir>": the
// per-task supervisor the native executor starts. It is not for people.
func newShimCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "runner-shim TASK_DIR",
		Short:  "Supervise one native task (started by the runner)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		// The exit status is the shim's own; it has no error to print.
		Run: func(cmd *cobra.Command, args []string) {
			os.Exit(native.RunShim(cmd.Context(), args[0]))
		},
	}
}

// shimArg recognises "hakuriver runner-shim TASK_DIR" and the warm form
// "hakuriver runner-shim -" (what the native executor runs), so that run
// can start the supervisor without cobra; any other form, a flag such as
// --help included, goes through the command.
func shimArg(args []string) (dir string, ok bool) {
	if len(args) != 3 || args[1] != "runner-shim" || args[2] != native.WarmArg && strings.HasPrefix(args[2], "-") {
		return "", false
	}
	return args[2], true
}
