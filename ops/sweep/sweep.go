// Package sweep expands hakurun's span arguments into the Cartesian
// product of argument lists, with the original's rules (SPEC.md §12):
//
//   - what follows "span:" is stripped of surrounding spaces first.
//   - "span:{A..B}" is the integers A to B inclusive (spaces around the
//     numbers allowed, Python's int() syntax: sign, "_" between digits,
//     leading zeros dropped); A > B gives no value; a malformed integer or
//     a second ".." is an error. Braces without ".." are a literal.
//   - "span:[x, y, z]" is the items split on "," and stripped of spaces:
//     no quoting or escaping, so "span:[\"a,b\"]" gives `"a` and `b"`;
//     "span:[]" gives no value.
//   - any other "span:REST" is the single literal REST.
//   - an argument without the "span:" prefix is itself.
//
// Combinations come in argument order with the first argument varying
// slowest (Python's itertools.product). The command itself is never
// expanded, only its arguments. The rules follow hakurun/run.py
// (parse_spanning, make_arg_product) of the original.
package sweep

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Prefix marks an argument that expands to several values.
const Prefix = "span:"

// MaxCombinations bounds the number of combinations Expand returns.
const MaxCombinations = 100_000

// Values returns the values one argument stands for.
func Values(arg string) ([]string, error) {
	rest, ok := strings.CutPrefix(arg, Prefix)
	if !ok {
		return []string{arg}, nil
	}
	rest = strings.TrimSpace(rest)
	switch {
	case len(rest) >= 2 && rest[0] == '{' && rest[len(rest)-1] == '}' && strings.Contains(rest, ".."):
		return intRange(arg, rest[1:len(rest)-1])
	case len(rest) >= 2 && rest[0] == '[' && rest[len(rest)-1] == ']':
		inner := rest[1 : len(rest)-1]
		if strings.TrimSpace(inner) == "" {
			return nil, nil
		}
		items := strings.Split(inner, ",")
		for i, it := range items {
			items[i] = strings.TrimSpace(it)
		}
		return items, nil
	}
	return []string{rest}, nil
}

// intRange expands "A..B".
func intRange(arg, body string) ([]string, error) {
	lo, hi, _ := strings.Cut(body, "..")
	a, errA := pyInt(lo)
	b, errB := pyInt(hi)
	if errA != nil || errB != nil {
		return nil, fmt.Errorf("argument %q: want span:{START..END} with integers", arg)
	}
	if a > b {
		return nil, nil
	}
	if b-a >= MaxCombinations || b-a < 0 {
		return nil, fmt.Errorf("argument %q: more than %d values", arg, MaxCombinations)
	}
	out := make([]string, 0, b-a+1)
	for i := a; i <= b; i++ {
		out = append(out, strconv.FormatInt(i, 10))
	}
	return out, nil
}

// tooMany names the span arguments whose product passes limit.
func tooMany(args []string, values [][]string, limit int) error {
	var parts []string
	for i, a := range args {
		if strings.HasPrefix(a, Prefix) {
			parts = append(parts, fmt.Sprintf("%q gives %d", a, len(values[i])))
		}
	}
	return &limitError{msg: fmt.Sprintf("more than %d combinations (the limit): %s", limit, strings.Join(parts, ", "))}
}

// ErrTooMany matches (errors.Is) Expand's error when the combinations
// would pass the limit, and no other.
var ErrTooMany = errors.New("too many combinations")

// limitError is Expand's error for combinations past the limit.
type limitError struct{ msg string }

func (e *limitError) Error() string { return e.msg }

// Is makes errors.Is(err, ErrTooMany) true.
func (e *limitError) Is(target error) bool { return target == ErrTooMany }

// Expand returns every combination of args' values, first argument varying
// slowest. It fails on a malformed span and when there would be more than
// limit combinations (limit <= 0 means MaxCombinations); zero combinations
// (an empty span) give an empty result and no error.
func Expand(args []string, limit int) ([][]string, error) {
	if limit <= 0 || limit > MaxCombinations {
		limit = MaxCombinations
	}
	values := make([][]string, len(args))
	total, over := 1, false
	for i, a := range args {
		v, err := Values(a)
		if err != nil {
			return nil, err
		}
		values[i] = v
		switch {
		case len(v) == 0:
			total = 0
		case total > 0 && total > limit/len(v):
			over = true
		case total > 0:
			total *= len(v)
		}
	}
	if over && total > 0 {
		return nil, tooMany(args, values, limit)
	}
	out := make([][]string, 0, total)
	if total == 0 {
		return out, nil
	}
	idx := make([]int, len(args))
	for {
		combo := make([]string, len(args))
		for i := range args {
			combo[i] = values[i][idx[i]]
		}
		out = append(out, combo)
		// Advance like an odometer: the last argument varies fastest.
		i := len(args) - 1
		for ; i >= 0; i-- {
			idx[i]++
			if idx[i] < len(values[i]) {
				break
			}
			idx[i] = 0
		}
		if i < 0 {
			return out, nil
		}
	}
}

// pyInt parses a decimal integer as Python's int() does for the original:
// surrounding spaces, an optional sign, single "_" between digits.
func pyInt(s string) (int64, error) {
	s = strings.TrimSpace(s)
	digits := strings.TrimLeft(s, "+-")
	if len(s)-len(digits) > 1 || strings.HasPrefix(digits, "_") || strings.HasSuffix(digits, "_") || strings.Contains(digits, "__") {
		return 0, fmt.Errorf("%q is not an integer", s)
	}
	return strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 10, 64)
}
