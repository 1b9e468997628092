package httpapi

import (
	"math"
	"strconv"
	"testing"
)

// TestParseArrayHugeRangesRefused checks that ranges whose size does not
// fit an int are refused like any other too-large array (they once
// overflowed the size check and looped for ever on the leader).
func TestParseArrayHugeRangesRefused(t *testing.T) {
	max := strconv.Itoa(math.MaxInt)
	for _, spec := range []string{"0-" + max, "1-" + max, "0-" + strconv.Itoa(math.MaxInt-1), "5,0-" + max, "0-9999,10000"} {
		if out, _, err := parseArray(spec); err == nil {
			t.Errorf("parseArray(%q) = %d indexes, want an error", spec, len(out))
		}
	}
	if out, _, err := parseArray("0-9999"); err != nil || len(out) != maxArray {
		t.Errorf("parseArray(0-9999) = %d, %v; want %d indexes", len(out), err, maxArray)
	}
}
