package cluster

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/hakuriver/hakuriver-ha/gossip"
)

// A host seen in gossip is only a hint: before the leader makes it a voter
// (or moves a voter to a new Raft address), the host proves that it holds
// the cluster token. The leader sends a fresh nonce to the API address the
// host gossips; the host answers an HMAC-SHA256, keyed with the token, over
// the nonce, its node ID and its Raft address. The token itself never
// leaves the leader, so a host that merely gossips learns nothing, and a
// proof obtained from a real replica names that replica's ID and address,
// not the impostor's.

// proveHostPath is the endpoint that answers the challenge (no token: the
// caller must not hand its token to an unverified host).
const proveHostPath = "/api/cluster/prove"

// proofRequest is the leader's challenge.
type proofRequest struct {
	Nonce string `json:"nonce"`
}

// proofResponse is a host's answer.
type proofResponse struct {
	ID   string `json:"id"`
	Raft string `json:"raft"`
	MAC  string `json:"mac"`
}

// proofMAC computes the proof of holding token for (nonce, id, raft).
func proofMAC(token, nonce, id, raft string) string {
	m := hmac.New(sha256.New, []byte(token))
	fmt.Fprintf(m, "hakuriver-host-proof\x00%s\x00%s\x00%s", nonce, id, raft)
	return hex.EncodeToString(m.Sum(nil))
}

// handleProve answers a challenge with this replica's proof.
func (h *Host) handleProve(w http.ResponseWriter, r *http.Request) {
	var req proofRequest
	if err := decodeJSON(r, &req); err != nil {
		writeError(w, err)
		return
	}
	if len(req.Nonce) != 64 {
		writeError(w, badRequest("nonce: want 64 hex characters"))
		return
	}
	raft := h.meta().Raft
	writeJSON(w, http.StatusOK, proofResponse{ID: h.cfg.NodeID, Raft: raft, MAC: proofMAC(h.cfg.ClusterToken, req.Nonce, h.cfg.NodeID, raft)})
}

// verifyHost challenges gossip member m at its API and reports whether it
// proved holding the cluster token for the ID and Raft address it gossips.
func (h *Host) verifyHost(ctx context.Context, m gossip.Member) error {
	nonce := make([]byte, 32)
	rand.Read(nonce) //nolint:errcheck // crypto/rand.Read never fails
	n := hex.EncodeToString(nonce)
	body, err := json.Marshal(proofRequest{Nonce: n})
	if err != nil {
		return fmt.Errorf("encode challenge: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.Meta.API+proveHostPath, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("challenge %s at %q: %w", m.Name, m.Meta.API, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.fwd.Do(req)
	if err != nil {
		return fmt.Errorf("challenge %s: %w", m.Name, err)
	}
	defer resp.Body.Close()
	var pr proofResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&pr); err != nil || resp.StatusCode != http.StatusOK {
		return fmt.Errorf("challenge %s: answer %d: %v", m.Name, resp.StatusCode, err)
	}
	want := proofMAC(h.cfg.ClusterToken, n, m.Name, m.Meta.Raft)
	if pr.ID != m.Name || pr.Raft != m.Meta.Raft || !hmac.Equal([]byte(pr.MAC), []byte(want)) {
		return fmt.Errorf("challenge %s: no proof of the cluster token for id %q raft %q", m.Name, m.Name, m.Meta.Raft)
	}
	return nil
}
