package httpapi

import (
	"fmt"
	"strings"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/cluster/auth"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// HiddenValue replaces the value of every env_vars entry of a task shown to
// a caller who may not see it (a viewer, or a user who does not own it).
const HiddenValue = "<hidden>"

// submitter is what a submit's caller brings to its tasks: the Unix
// account they run as and what an administrator allows them.
type submitter struct {
	// runAs is recorded as Task.RunAs ("" = the runner's runner_user).
	runAs string
	// policy is the account's effective policy (none for anonymous
	// callers).
	policy fsm.Policy
	// allowRoot is recorded as Task.AllowRoot: the account's run_as_root
	// policy; true for anonymous callers and the cluster itself, who run
	// as the runner's default user as in the original HakuRiver (an
	// administrator chose that by enabling anonymous access).
	allowRoot bool
}

// submitterOf resolves the account of p from the replicated state (the
// leader's, up to date): its unix_user and its effective policy. A unix_user
// that is root is refused (403) unless the policy has run_as_root.
// Anonymous callers run as the runner's default user (root allowed) with
// no policy.
func (a *API) submitterOf(p auth.Principal) (submitter, error) {
	if p.Kind != auth.Account {
		return submitter{allowRoot: true}, nil
	}
	var u fsm.User
	found := false
	if a.d.Accounts != nil {
		u, found = a.d.Accounts.User(p.Name)
	}
	if !found && p.User != nil {
		u, found = *p.User, true
	}
	if !found && a.d.Accounts == nil {
		return submitter{}, nil // no account records to read (tests of other handlers)
	}
	if !found {
		return submitter{}, forbidden(fmt.Sprintf("forbidden: account %q no longer exists", p.Name))
	}
	s := submitter{runAs: u.UnixUser, policy: u.Policy}
	if a.d.Accounts != nil {
		s.policy = a.d.Accounts.EffectivePolicy(u)
	}
	if isRootUser(s.runAs) && !s.policy.RunAsRoot {
		return submitter{}, forbidden(fmt.Sprintf("forbidden: the unix_user of account %q is %q (root or the root group), and running tasks as root needs the run_as_root policy (an admin grants it to the account or one of its groups)", u.Name, s.runAs))
	}
	s.allowRoot = s.policy.RunAsRoot
	return s, nil
}

// isRootUser reports whether a unix_user names root: the name root, UID 0
// or GID 0 (the root group).
func isRootUser(unixUser string) bool {
	zero := func(s string) bool { return s != "" && strings.Trim(s, "0") == "" }
	uid, gid, _ := strings.Cut(unixUser, ":")
	return uid == "root" || zero(uid) || zero(gid)
}

// checkPolicy refuses (403, naming the field) what a submit asks for beyond
// a plain request: privileged containers and additional mounts, each only
// with the matching policy of its owner. The server's own defaults
// (Config.TasksPrivileged, Config.AdditionalMounts) are an administrator's
// decision and are not checked here.
func checkPolicy(req *api.SubmitRequest, s submitter) error {
	if req.Privileged != nil && *req.Privileged && !s.policy.Privileged {
		return forbidden("forbidden: privileged: privileged containers need the privileged policy (an admin grants it to the account or one of its groups; anonymous callers never get it)")
	}
	if len(req.AdditionalMounts) > 0 && !s.policy.Mounts {
		return forbidden("forbidden: additional_mounts: bind mounts named in a request need the mounts policy (an admin grants it to the account or one of its groups; anonymous callers never get it)")
	}
	return nil
}

// maySeeSecrets reports whether p may see the values of t's env_vars: its
// owner, an operator or admin, or the cluster itself.
func maySeeSecrets(p auth.Principal, t *fsm.Task) bool {
	return p.Kind == auth.Cluster || p.Can(fsm.RoleOperator) || p.Can(fsm.RoleUser) && p.Owns(t.Owner)
}

// shown returns t as p may see it: values of env_vars (keys kept) and the
// notify URL replaced by HiddenValue unless maySeeSecrets. t is never modified.
func shown(p auth.Principal, t *fsm.Task) *fsm.Task {
	if len(t.EnvVars) == 0 && t.Notify == "" || maySeeSecrets(p, t) {
		return t
	}
	c := *t
	if c.Notify != "" {
		c.Notify = HiddenValue // may hold a token of the owner's receiver
	}
	if len(t.EnvVars) > 0 {
		c.EnvVars = make(map[string]string, len(t.EnvVars))
		for k := range t.EnvVars {
			c.EnvVars[k] = HiddenValue
		}
	}
	return &c
}

// shownAll is shown over a list, in place.
func shownAll(p auth.Principal, tasks []*fsm.Task) []*fsm.Task {
	for i, t := range tasks {
		tasks[i] = shown(p, t)
	}
	return tasks
}
