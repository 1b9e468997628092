package cluster

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
)

// countingHash counts what it hashes.
type countingHash struct {
	n int64
	h io.Writer
}

func (c *countingHash) Write(b []byte) (int, error) {
	c.n += int64(len(b))
	return c.h.Write(b)
}

// handleStateDigest answers this replica's own StateDigest: the SHA-256 of
// its FSM snapshot encoding at one applied index. It is served locally,
// never forwarded, so that a test (the chaos checker) can compare the
// replicas' states byte for byte after quiescence.
func (h *Host) handleStateDigest(w http.ResponseWriter, r *http.Request) {
	snap := h.machine.Snapshot()
	defer snap.Close()
	sum := sha256.New()
	ch := &countingHash{h: sum}
	if err := snap.Write(ch); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, api.StateDigest{
		NodeID:       h.cfg.NodeID,
		AppliedIndex: snap.AppliedIndex(),
		SHA256:       hex.EncodeToString(sum.Sum(nil)),
		Bytes:        ch.n,
	})
}
