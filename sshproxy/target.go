package sshproxy

import (
	"bytes"
	"context"
	"net"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// Resolver tells the proxy what the cluster knows about a task. The host
// implements it over its replicated state machine.
type Resolver interface {
	// Lookup returns task id and its assigned node. An unknown task is an
	// error wrapping ErrTaskNotFound; any other error is reported to the
	// client as an internal lookup error. Lookup is called concurrently and
	// must honour ctx.
	Lookup(ctx context.Context, id int64) (Target, error)
}

// ResolverFunc adapts a function to a Resolver.
type ResolverFunc func(ctx context.Context, id int64) (Target, error)

// Lookup calls f.
func (f ResolverFunc) Lookup(ctx context.Context, id int64) (Target, error) { return f(ctx, id) }

// Target is a task as the proxy sees it: the task and its assigned node
// (nil when none is assigned or the node is unknown). The proxy derives
// everything else, and every refusal reason, from these two.
type Target struct {
	Task *fsm.Task
	Node *fsm.Node
}

// Address returns the "ip:port" of the VPS's sshd: the host of the runner's
// URL and the port the runner published. It fails with a *TunnelError
// carrying the original's reason when the task is not a VPS, not running or
// paused, has no node or port, or its node is not online.
func (t Target) Address() (string, error) {
	task := t.Task
	if task == nil {
		return "", refuse(ErrTaskNotFound, nil, "Task not found.")
	}
	id := task.TaskID
	switch {
	case task.TaskType != fsm.TaskVPS:
		return "", refuse(ErrNotVPS, nil, "Task %d is not a VPS task.", id)
	case task.Status != fsm.StatusRunning && task.Status != fsm.StatusPaused:
		return "", refuse(ErrNotActive, nil, "VPS task %d is not active (status: %s).", id, task.Status)
	case task.AssignedNode == "":
		return "", refuse(ErrNotActive, nil, "VPS task %d has no assigned node.", id)
	case task.SSHPort <= 0:
		return "", refuse(ErrNotActive, nil, "VPS task %d has no SSH port assigned.", id)
	case t.Node == nil || t.Node.Status != fsm.NodeOnline:
		return "", refuse(ErrNodeOffline, nil, "Assigned node for VPS task %d is not online.", id)
	}
	u, err := url.Parse(t.Node.URL)
	if err != nil {
		return "", refuse(ErrRunnerUnreachable, err, "Error parsing runner URL for node %s.", t.Node.Hostname)
	}
	host := u.Hostname()
	if host == "" {
		return "", refuse(ErrRunnerUnreachable, nil, "Invalid runner URL format for node %s.", t.Node.Hostname)
	}
	return net.JoinHostPort(host, strconv.Itoa(task.SSHPort)), nil
}

// AuthorizedKeys parses the VPS's public keys: the task's Command holds
// them in authorized_keys format, as in the original. Unparsable lines are
// skipped; a command task yields none.
func (t Target) AuthorizedKeys() []ssh.PublicKey {
	if t.Task == nil || t.Task.TaskType != fsm.TaskVPS {
		return nil
	}
	var keys []ssh.PublicKey
	for _, line := range strings.Split(t.Task.Command, "\n") {
		if k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line)); err == nil {
			keys = append(keys, k)
		}
	}
	return keys
}

// Authorizes reports whether key is one of the VPS's authorized keys.
func (t Target) Authorizes(key ssh.PublicKey) bool {
	return containsKey(t.AuthorizedKeys(), key)
}

func containsKey(keys []ssh.PublicKey, key ssh.PublicKey) bool {
	if key == nil {
		return false
	}
	want := key.Marshal()
	for _, k := range keys {
		if bytes.Equal(k.Marshal(), want) {
			return true
		}
	}
	return false
}

// ParseTaskID parses a decimal task ID as the line protocol and the jump
// host accept it: surrounding white space is ignored, everything else must
// be ASCII digits.
func ParseTaskID(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	id, err := strconv.ParseInt(s, 10, 64)
	return id, err == nil
}
