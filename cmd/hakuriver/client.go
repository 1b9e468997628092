package main

import "github.com/spf13/cobra"

// clientFlags holds the persistent flags every client command shares.
type clientFlags struct {
	hosts  []string
	output string
	config string
}

func addClientFlags(root *cobra.Command) *clientFlags { return &clientFlags{} }

func newTaskCmd(g *clientFlags) *cobra.Command    { return &cobra.Command{Use: "task"} }
func newNodeCmd(g *clientFlags) *cobra.Command    { return &cobra.Command{Use: "node"} }
func newClusterCmd(g *clientFlags) *cobra.Command { return &cobra.Command{Use: "cluster"} }
