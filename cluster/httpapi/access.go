package httpapi

import (
	"github.com/hakuriver/hakuriver-ha/cluster/auth"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// MayActOn is nil when p may act on task t (what names the act, for the
// 403's message): its owner, or an operator or admin, as for kill and the
// logs. Task access handlers outside this package (forward, cp) use it.
func MayActOn(p auth.Principal, t *fsm.Task, what string) error { return mayActOn(p, t, what) }
