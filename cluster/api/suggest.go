package api

import "strings"

// Closest returns the candidate nearest to name for a "did you mean"
// hint: one equal but for letter case, else the first one within 2 edits
// (Levenshtein distance) that no other beats; ok is false when none is that
// close. The submit contract and the config file loader share it.
func Closest(name string, candidates []string) (best string, ok bool) {
	bestD := 3
	for _, c := range candidates {
		if strings.EqualFold(c, name) {
			return c, true
		}
		if d := editDistance(c, name); d < bestD {
			best, bestD = c, d
		}
	}
	return best, best != ""
}

// editDistance is the Levenshtein distance between a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
