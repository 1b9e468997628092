package main

import (
	"os"

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
