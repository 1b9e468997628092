package cluster

import (
	"hash/fnv"
	"sync"
	"time"
)

// idGenerator issues snowflake task IDs: 41 bits of Unix milliseconds, 10
// bits of instance (a hash of the replica's node ID, so two leaders never
// share it by default) and 12 bits of sequence. Each ID is also strictly
// greater than every ID committed before (the floor), so a new leader whose
// clock runs behind the old one's still never reuses an ID. Safe for
// concurrent use.
type idGenerator struct {
	mu       sync.Mutex
	instance int64
	last     int64
	now      func() time.Time
}

func newIDGenerator(nodeID string, now func() time.Time) *idGenerator {
	h := fnv.New32a()
	h.Write([]byte(nodeID)) //nolint:errcheck // hash writes never fail
	return &idGenerator{instance: int64(h.Sum32() % 1024), now: now}
}

// next returns a fresh ID greater than floor and than every ID it issued.
func (g *idGenerator) next(floor int64) int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	id := g.now().UnixMilli()<<22 | g.instance<<12
	if min := max(g.last, floor) + 1; id < min {
		id = min
	}
	g.last = id
	return id
}
