package cluster

import (
	"testing"
	"time"
)

// TestPassGap: kicked scheduling passes come at most every minPassInterval,
// and a pass that took long (a long queue: a pass is O(active tasks))
// spaces the next by passSlowdown times its duration, so passes take at
// most 1/passSlowdown of a core from the submits that fill the queue.
func TestPassGap(t *testing.T) {
	for _, c := range []struct{ took, want time.Duration }{
		{0, minPassInterval},
		{time.Millisecond, minPassInterval},
		{minPassInterval / passSlowdown, minPassInterval},
		{20 * time.Millisecond, 20 * time.Millisecond * passSlowdown},
		{time.Second, passSlowdown * time.Second},
	} {
		if got := passGap(c.took); got != c.want {
			t.Errorf("passGap(%s) = %s, want %s", c.took, got, c.want)
		}
	}
}
