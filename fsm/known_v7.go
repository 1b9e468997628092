//go:build hakuriver_fsm_v7

package fsm

// MaxKnownCommand, built with the hakuriver_fsm_v7 tag, is that of a build
// from before CmdSetEnvironment existed: the upgrade tests run such a binary
// as the "old" replica of a cluster.
const MaxKnownCommand = CmdSetNodeDrain
