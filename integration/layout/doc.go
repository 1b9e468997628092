// Package layout holds no code: its test checks the import directions of the
// whole module against the written table in layout_test.go (STYLE.md 3.2),
// so that `go test ./...` fails, naming the importing package, the imported
// one and the rule, when a change makes the package cut drift.
//
// The rules, in short:
//   - fsm imports no project package; scheduler imports only fsm.
//   - Only cluster (and its tests) imports github.com/hashicorp/raft and
//     raft-boltdb; only gossip imports github.com/hashicorp/memberlist.
//   - Only the runner's Docker executor and the environment package import the
//     Docker SDK in production code.
//   - cluster's production code never depends on any runner package, not
//     even through another package (its tests may wire one in).
//   - Nothing imports cmd; nothing outside integration imports integration.
//   - Production code never imports "testing" nor a test-helper package (one
//     whose name ends in "test", such as sshproxy/sshtest).
package layout
