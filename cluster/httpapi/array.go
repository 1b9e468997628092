package httpapi

import (
	"fmt"
	"strconv"
	"strings"
)

// maxArray bounds the number of tasks one array submit may create.
const maxArray = 10000

// parseArray reads Slurm's --array syntax: "0-99", "0-99%8", "1,3,5",
// "0-3,8%2". It returns the indexes and the throttle (0 = none).
func parseArray(spec string) ([]int, int, error) {
	body, throttle := spec, 0
	if i := strings.IndexByte(spec, '%'); i >= 0 {
		n, err := strconv.Atoi(spec[i+1:])
		if err != nil || n < 1 {
			return nil, 0, fmt.Errorf("array %q: throttle after %% must be a positive integer", spec)
		}
		body, throttle = spec[:i], n
	}
	var out []int
	seen := map[int]bool{}
	for _, part := range strings.Split(body, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(strings.TrimSpace(lo))
		if err != nil || a < 0 {
			return nil, 0, fmt.Errorf("array %q: %q is not a non-negative index or range", spec, part)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(strings.TrimSpace(hi)); err != nil || b < a {
				return nil, 0, fmt.Errorf("array %q: range %q must be LOW-HIGH with LOW <= HIGH", spec, part)
			}
		}
		// b-a cannot overflow (0 <= a <= b); b-a+1 could, at MaxInt.
		if b-a >= maxArray-len(out) {
			return nil, 0, fmt.Errorf("array %q: more than %d tasks", spec, maxArray)
		}
		for i := a; i <= b; i++ {
			if !seen[i] {
				seen[i] = true
				out = append(out, i)
			}
		}
	}
	return out, throttle, nil
}
