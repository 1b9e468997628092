package main

import "github.com/spf13/cobra"

func newHostCmd() *cobra.Command { return &cobra.Command{Use: "host"} }
