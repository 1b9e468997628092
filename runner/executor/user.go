package executor

import (
	"fmt"
	"os/user"
	"strconv"
	"strings"
)

// Identity is a Unix account a task runs as, resolved on the runner.
type Identity struct {
	// Name is the user name, or the UID when it has no passwd entry.
	Name string
	UID  uint32
	GID  uint32
	// Groups are the supplementary group IDs.
	Groups []uint32
	// Home is the home directory ("/" without a passwd entry).
	Home string
}

// Root reports whether the identity is the superuser.
func (id Identity) Root() bool { return id.UID == 0 }

// LookupUser resolves Spec.User on this machine: a user name (which must
// exist here), a numeric UID (its passwd entry's group and supplementary
// groups when it has one, else the group of the same number) or UID:GID
// (exactly those, no supplementary groups; no passwd entry needed).
func LookupUser(s string) (Identity, error) {
	uidStr, gidStr, hasGID := strings.Cut(s, ":")
	uid, uidErr := strconv.ParseUint(uidStr, 10, 32)
	if uidErr != nil {
		if hasGID {
			return Identity{}, fmt.Errorf("look up user %q: want a user name or UID[:GID]", s)
		}
		u, err := user.Lookup(s)
		if err != nil {
			return Identity{}, fmt.Errorf("look up user %q: %w", s, err)
		}
		return fromPasswd(u)
	}
	if hasGID {
		gid, err := strconv.ParseUint(gidStr, 10, 32)
		if err != nil {
			return Identity{}, fmt.Errorf("look up user %q: GID %q is not a number", s, gidStr)
		}
		id := Identity{Name: uidStr, UID: uint32(uid), GID: uint32(gid), Home: "/"}
		if u, err := user.LookupId(uidStr); err == nil {
			id.Name, id.Home = u.Username, u.HomeDir
		}
		return id, nil
	}
	if u, err := user.LookupId(uidStr); err == nil {
		return fromPasswd(u)
	}
	return Identity{Name: uidStr, UID: uint32(uid), GID: uint32(uid), Home: "/"}, nil
}

// fromPasswd turns a passwd entry into an Identity with its groups.
func fromPasswd(u *user.User) (Identity, error) {
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return Identity{}, fmt.Errorf("parse uid of user %q: %w", u.Username, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return Identity{}, fmt.Errorf("parse gid of user %q: %w", u.Username, err)
	}
	id := Identity{Name: u.Username, UID: uint32(uid), GID: uint32(gid), Home: u.HomeDir}
	gids, err := u.GroupIds()
	if err != nil {
		return Identity{}, fmt.Errorf("list groups of user %q: %w", u.Username, err)
	}
	for _, g := range gids {
		if n, err := strconv.ParseUint(g, 10, 32); err == nil {
			id.Groups = append(id.Groups, uint32(n))
		}
	}
	return id, nil
}

// Nobody is UID:GID of the account a task runs as when it may not run as
// root and nothing else names one: the conventional "nobody" and
// "nogroup" IDs, which need no passwd entry.
const Nobody = "65534:65534"

// TaskUser is who a task runs as on this runner (Spec.User), given its
// recorded RunAs (its owner's unix_user, "" when none), this runner's
// runner_user, whether it runs natively (not in a Docker container) and
// whether root is allowed for it (its owner's run_as_root policy, or an
// anonymous caller):
//
//   - a RunAs is always used (the leader refused a root one without the
//     policy);
//   - else, with root allowed, as before accounts existed: runner_user
//     ("" = the runner's own user) for native tasks, the image's own user
//     ("") for Docker tasks;
//   - else runner_user when it is set and is not root (UID 0 or GID 0),
//     and Nobody otherwise, for both kinds: never the runner's own user
//     or the image's user, which are usually root.
//
// It fails only when runner_user cannot be resolved here.
func TaskUser(runAs, runnerUser string, native, allowRoot bool) (string, error) {
	switch {
	case runAs != "":
		return runAs, nil
	case allowRoot && native:
		return runnerUser, nil
	case allowRoot:
		return "", nil
	case runnerUser == "":
		return Nobody, nil
	}
	id, err := LookupUser(runnerUser)
	if err != nil {
		return "", fmt.Errorf("runner_user: %w", err)
	}
	if id.Root() || id.GID == 0 {
		return Nobody, nil
	}
	return runnerUser, nil
}
