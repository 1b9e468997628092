//go:build !hakuriver_fsm_v7

package fsm

// MaxKnownCommand is the highest command type this build can apply. Every
// replica gossips it, and the leader proposes a command only when every
// replica it sees knows the command's type (see cluster). Raise it with
// every new command type.
const MaxKnownCommand = CmdSubmitPart
