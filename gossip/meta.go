// Package gossip wraps hashicorp/memberlist: one pool holds host replicas and
// runners, each advertising its role and addresses in member metadata. It is
// the only package that imports memberlist.
package gossip

import (
	"encoding/json"
	"fmt"
)

// Role says what a pool member is.
type Role string

// Member roles.
const (
	RoleHost   Role = "host"
	RoleRunner Role = "runner"
)

// MaxMetaSize is memberlist's limit on metadata bytes.
const MaxMetaSize = 512

// Meta is what a member tells the pool about itself. It must encode to at
// most MaxMetaSize bytes.
type Meta struct {
	Role Role   `json:"r"`
	ID   string `json:"id"`
	// API is the member's HTTP base URL (host API or runner API).
	API string `json:"api,omitempty"`
	// Raft is a host's Raft transport address.
	Raft string `json:"raft,omitempty"`
	// Bootstrapped is set by a host once it holds Raft state, so that a new
	// host never bootstraps a second cluster beside an existing one.
	Bootstrapped bool `json:"b,omitempty"`
	// SSHProxy is a host's SSH proxy address.
	SSHProxy string `json:"ssh,omitempty"`
	// Version is the binary's version.
	Version string `json:"v,omitempty"`
	// MaxCommand is, for a host, the highest replicated command type its
	// build can apply (fsm.MaxKnownCommand); 0 from older builds.
	MaxCommand uint8 `json:"mc,omitempty"`
	// Leaving is set by a member about to leave on purpose (Close): the
	// others then know that its silence is a clean stop, not a failure.
	Leaving bool `json:"l,omitempty"`
}

// Encode serialises m, failing when it exceeds MaxMetaSize.
func (m Meta) Encode() ([]byte, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode gossip meta: %w", err)
	}
	if len(b) > MaxMetaSize {
		return nil, fmt.Errorf("encode gossip meta: %d bytes exceeds %d", len(b), MaxMetaSize)
	}
	return b, nil
}

// DecodeMeta parses metadata written by Meta.Encode.
func DecodeMeta(b []byte) (Meta, error) {
	var m Meta
	if len(b) == 0 {
		return m, fmt.Errorf("decode gossip meta: empty")
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("decode gossip meta: %w", err)
	}
	return m, nil
}
