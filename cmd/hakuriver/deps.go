package main

import (
	_ "github.com/BurntSushi/toml"
	_ "github.com/go-chi/chi/v5"
	_ "github.com/hashicorp/memberlist"
	_ "github.com/hashicorp/raft"
	_ "github.com/hashicorp/raft-boltdb/v2"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/spf13/cobra"
)

func main() {}
