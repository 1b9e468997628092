package api_test

import (
	"math/big"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
)

// referenceMemory is ParseMemory written the slow, obvious way with
// arbitrary precision: ok is false for anything it should refuse.
func referenceMemory(s string) (int64, bool) {
	num := strings.ToUpper(strings.TrimSpace(s))
	mult := big.NewInt(1)
	for _, sf := range []struct {
		suffix string
		mult   int64
	}{{"KI", 1 << 10}, {"MI", 1 << 20}, {"GI", 1 << 30}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}} {
		if strings.HasSuffix(num, sf.suffix) {
			num, mult = num[:len(num)-len(sf.suffix)], big.NewInt(sf.mult)
			break
		}
	}
	if num == "" {
		return 0, false
	}
	for _, c := range num {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, _ := new(big.Int).SetString(num, 10)
	n.Mul(n, mult)
	if !n.IsInt64() {
		return 0, false
	}
	return n.Int64(), true
}

// FuzzParseMemory checks ParseMemory against an arbitrary-precision
// reference: it accepts exactly what the reference accepts, with the same
// value, never a negative or wrapped one, and its answer round-trips
// through the plain byte count and through each suffix that divides it.
func FuzzParseMemory(f *testing.F) {
	for _, s := range []string{"1024", "512M", "4g", "2Ki", " 3Gi ", "", "G", "-1", "1.5G", "+5", "0x10", "٣",
		"9223372036854775807", "9223372036854775808", "9007199254740991Ki", "8589934591Gi", "8589934592Gi",
		"9223372036G", "9223372037G", "00000000000000000000000000001k", "1kib", "1 K"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := api.ParseMemory(s)
		want, ok := referenceMemory(s)
		if (err == nil) != ok || got != want {
			t.Fatalf("ParseMemory(%q) = %d, %v; reference %d, accepted %v", s, got, err, want, ok)
		}
		if err != nil {
			if got != 0 || err.Error() == "" {
				t.Fatalf("ParseMemory(%q) refused with value %d, message %q", s, got, err)
			}
			return
		}
		if got < 0 {
			t.Fatalf("ParseMemory(%q) = %d: negative", s, got)
		}
		if back, err := api.ParseMemory(strconv.FormatInt(got, 10)); err != nil || back != got {
			t.Fatalf("plain %d reads back as %d, %v", got, back, err)
		}
		for _, sf := range []struct {
			suffix string
			mult   int64
		}{{"k", 1e3}, {"Mi", 1 << 20}, {"G", 1e9}} {
			if got%sf.mult == 0 {
				if back, err := api.ParseMemory(strconv.FormatInt(got/sf.mult, 10) + sf.suffix); err != nil || back != got {
					t.Fatalf("%d as %d%s reads back as %d, %v", got, got/sf.mult, sf.suffix, back, err)
				}
			}
		}
	})
}

// FuzzParseTarget checks that ParseTarget never accepts what the host
// refuses (api.TargetRE) nor a negative GPU ID, and that an accepted target
// written back as HOST[::GPU,...] parses to the same host and GPUs.
func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"node1", "node1:0", "node1::0,1", "node1:1::2,,3", "node1::", "node1::a", "node1::-1",
		"node1:x", "::0", "", "node1:-0", "node1:+1", "no de", "node1::+1", "n:1:2", "n:::1", "n::1::2",
		"n::99999999999999999999", "ü", " node1 :: 1 "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		host, gpus, err := api.ParseTarget(s)
		if err != nil {
			if host != "" || gpus != nil || err.Error() == "" {
				t.Fatalf("ParseTarget(%q) refused with %q %v, message %q", s, host, gpus, err)
			}
			return
		}
		if !api.TargetRE().MatchString(host) {
			t.Fatalf("ParseTarget(%q) accepts host %q, which the host refuses", s, host)
		}
		for _, g := range gpus {
			if g < 0 {
				t.Fatalf("ParseTarget(%q) accepts GPU %d", s, g)
			}
		}
		back := host
		if gpus != nil {
			ids := make([]string, len(gpus))
			for i, g := range gpus {
				ids[i] = strconv.Itoa(g)
			}
			back += "::" + strings.Join(ids, ",")
		}
		h2, g2, err := api.ParseTarget(back)
		if err != nil || h2 != host || !slices.Equal(g2, gpus) || (g2 == nil) != (gpus == nil) {
			t.Fatalf("ParseTarget(%q) = %q %v; written back as %q it reads %q %v, %v", s, host, gpus, back, h2, g2, err)
		}
	})
}
