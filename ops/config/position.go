package config

import (
	"slices"
	"strings"
)

// keyLine returns the 1-based line of text where key is set, or 0 when it
// cannot be found. When only an enclosing key or table header is found (an
// inline table, or a key left out of its section), it returns that line.
//
// The toml package does not expose key positions, so this scans the text: it
// tracks [table] and [[array]] headers and matches "key = ..." lines below
// them, dotted keys included. It skips comments and multi-line strings. Quoted
// keys containing dots are not split correctly, which only costs the line.
func keyLine(text string, key []string) int {
	var header []string
	inside := "" // delimiter of the multi-line string being skipped
	partial := 0 // line of the nearest enclosing key or header
	for i, line := range strings.Split(text, "\n") {
		if inside != "" {
			if strings.Count(line, inside)%2 == 1 {
				inside = ""
			}
			continue
		}
		line = strings.TrimSpace(stripComment(line))
		if line == "" {
			continue
		}
		var full []string
		if strings.HasPrefix(line, "[") {
			header = splitKey(strings.Trim(line, "[] \t"))
			full = header
		} else {
			eq := strings.IndexByte(line, '=')
			if eq < 0 {
				continue
			}
			full = append(append([]string(nil), header...), splitKey(line[:eq])...)
			for _, delim := range []string{`"""`, `'''`} {
				if strings.Count(line[eq:], delim)%2 == 1 {
					inside = delim
				}
			}
		}
		switch {
		case slices.Equal(full, key):
			return i + 1
		case partial == 0 && len(full) < len(key) && slices.Equal(full, key[:len(full)]):
			partial = i + 1
		}
	}
	return partial
}

// stripComment cuts a "#" comment that is not inside a quoted string.
func stripComment(line string) string {
	var quote byte
	for i := 0; i < len(line); i++ {
		switch c := line[i]; {
		case quote != 0:
			if c == '\\' && quote == '"' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '#':
			return line[:i]
		}
	}
	return line
}

// splitKey splits a dotted TOML key and unquotes its parts.
func splitKey(s string) []string {
	parts := strings.Split(s, ".")
	for i, p := range parts {
		parts[i] = strings.Trim(strings.TrimSpace(p), `"'`)
	}
	return parts
}
