package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/spf13/cobra"

	"github.com/hakuriver/hakuriver-ha/ops/config"
)

// newConfigCmd returns "hakuriver config": writing and checking config files.
func newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Write and check HakuRiver config files",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newConfigInitCmd(), newConfigCheckCmd())
	return cmd
}

func newConfigInitCmd() *cobra.Command {
	var (
		path  string
		force bool
	)
	cmd := &cobra.Command{
		Use:   "init [--path FILE] [--force]",
		Short: "Write a commented config file holding every default",
		Long: "Write a config file that sets every key to its default, each with a comment\n" +
			"explaining it. Refuses to overwrite an existing file unless --force is given.\n" +
			"--path - writes to standard output.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if path == "-" {
				return config.WriteDefault(cmd.OutOrStdout())
			}
			if err := writeDefaultFile(path, force); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s\n", path)
			return nil
		},
	}
	cmd.Flags().StringVar(&path, "path", "hakuriver.toml", `file to write ("-" for standard output)`)
	cmd.Flags().BoolVar(&force, "force", false, "overwrite the file if it exists")
	return cmd
}

// writeDefaultFile writes the default config to path, creating it with mode
// 0600 (it is where the cluster token goes). Without force an existing file is
// an error and is left untouched.
func writeDefaultFile(path string, force bool) (err error) {
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s already exists (use --force to overwrite it)", path)
	}
	if err != nil {
		return fmt.Errorf("create config file: %w", err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close config file: %w", cerr)
		}
	}()
	return config.WriteDefault(f)
}

func newConfigCheckCmd() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "check --config FILE",
		Short: "Load and validate a config file; print ok or every problem",
		Long: "Load a config file as host and runner would, and validate it. Prints \"ok\",\n" +
			"or every problem with its file, line and key, and exits non-zero.\n" +
			"The file may also be given as an argument or in HAKURIVER_CONFIG.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			file := path
			if file == "" && len(args) == 1 {
				file = args[0]
			}
			if file == "" {
				file = os.Getenv("HAKURIVER_CONFIG")
			}
			if file == "" {
				return errors.New("no config file given: use --config FILE")
			}
			if _, err := config.Load(file); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "ok")
			return nil
		},
	}
	// A local --config shadows a persistent --config of the root, if any;
	// both mean the same file here.
	cmd.Flags().StringVar(&path, "config", "", "config file to check")
	return cmd
}
