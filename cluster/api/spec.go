package api

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The value syntaxes of a submit as people type them (CLI flags, forms),
// checked before a request is sent; the host validates the request again.

// TargetRE matches a submit target as the host accepts it, "HOST" or
// "HOST:NUMA_ID"; its first group also checks a runner's hostname.
var TargetRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^([a-zA-Z0-9._-]+)(?::(\d+))?$`) })

// ParseTarget splits a submit target HOST[:NUMA][::GPU,GPU...] at the
// first "::" as the original client does: the part before is the target
// sent to the host (SubmitRequest.Targets), the part after is the GPU list
// of that target (nil without "::"). It accepts only what the host accepts
// (TargetRE); its error says what is malformed.
func ParseTarget(t string) (host string, gpus []int, err error) {
	host, list, hasGPU := strings.Cut(strings.TrimSpace(t), "::")
	if host == "" {
		return "", nil, errors.New("want HOST[:NUMA][::GPU,GPU...]")
	}
	if h, numa, ok := strings.Cut(host, ":"); ok && h != "" && (numa == "" || strings.Trim(numa, "0123456789") != "") {
		return "", nil, errors.New("NUMA ID must be a non-negative integer")
	}
	if !TargetRE().MatchString(host) {
		return "", nil, fmt.Errorf("host %q: want HOST[:NUMA][::GPU,GPU...], HOST of letters, digits, '.', '_' and '-'", host)
	}
	if !hasGPU {
		return host, nil, nil
	}
	gpus, err = ParseGPUList(list)
	if err != nil {
		return "", nil, fmt.Errorf("invalid GPU ID format: %w", err)
	}
	return host, gpus, nil
}

// ParseGPUList parses "0,1,,3" (blank items skipped) into GPU IDs; an
// empty list is empty, not nil.
func ParseGPUList(s string) ([]int, error) {
	ids := []int{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		n, err := strconv.Atoi(item)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("GPU IDs must be non-negative integers separated by commas, got %q", item)
		}
		ids = append(ids, n)
	}
	return ids, nil
}

// memorySuffixes are the accepted memory size suffixes (matched upper-cased,
// binary ones first so "Ki" is not read as "K").
func memorySuffixes() []struct {
	suffix string
	mult   int64
} {
	return []struct {
		suffix string
		mult   int64
	}{
		{"KI", 1 << 10}, {"MI", 1 << 20}, {"GI", 1 << 30},
		{"K", 1e3}, {"M", 1e6}, {"G", 1e9},
	}
}

// ParseMemory parses a memory size as the CLI takes it: digits, then K, M,
// G (powers of 10) or Ki, Mi, Gi (powers of 2), case-insensitive; no suffix
// means bytes. Its error says what is accepted.
func ParseMemory(s string) (int64, error) {
	num := strings.ToUpper(strings.TrimSpace(s))
	mult := int64(1)
	for _, sf := range memorySuffixes() {
		if rest, ok := strings.CutSuffix(num, sf.suffix); ok {
			num, mult = rest, sf.mult
			break
		}
	}
	if num == "" || strings.Trim(num, "0123456789") != "" {
		return 0, errors.New("use a number of bytes with an optional suffix K, M, G (10^3, 10^6, 10^9) or Ki, Mi, Gi (2^10, 2^20, 2^30), e.g. 512M or 4G")
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n > (1<<63-1)/mult {
		return 0, errors.New("value too large")
	}
	return n * mult, nil
}

// CheckArray checks the syntax of an array spec (SubmitRequest.Array),
// "RANGE[,RANGE...][%N]" where RANGE is INDEX or LOW-HIGH, and returns it
// without blanks. The host checks the rest (the size limit above all).
func CheckArray(spec string) (string, error) {
	spec = strings.Join(strings.Fields(spec), "")
	body, throttle, hasThrottle := strings.Cut(spec, "%")
	if hasThrottle {
		if n, err := strconv.Atoi(throttle); err != nil || n < 1 {
			return "", fmt.Errorf("the limit after %% must be a positive integer, got %q", throttle)
		}
	}
	for _, part := range strings.Split(body, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, errA := strconv.ParseUint(lo, 10, 31)
		b, errB := strconv.ParseUint(hi, 10, 31)
		switch {
		case !isRange && errA != nil:
			return "", fmt.Errorf("%q is not an index: want INDEX or LOW-HIGH, e.g. 0-99, 1,3,5 or 0-99%%8", part)
		case isRange && (errA != nil || errB != nil):
			return "", fmt.Errorf("%q is not a range: want LOW-HIGH with non-negative integers", part)
		case isRange && b < a:
			return "", fmt.Errorf("range %q ends before it starts", part)
		}
	}
	return spec, nil
}

// ParseTimeLimit reads a time limit (SubmitRequest.TimeLimitSeconds):
// plain seconds ("3600") or a Go duration ("90m", "1h30m"), rounded up to
// whole seconds. It rejects negative values; 0 means no limit.
func ParseTimeLimit(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 {
			return 0, errors.New("must not be negative")
		}
		return n, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, errors.New("want a duration such as 90s, 90m or 1h30m, or plain seconds")
	}
	if d < 0 {
		return 0, errors.New("must not be negative")
	}
	secs := int64(d / time.Second)
	if d%time.Second != 0 {
		secs++
	}
	return secs, nil
}
