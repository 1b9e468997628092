package config

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
)

// Load reads the TOML file at path over Default() and validates the result.
// Keys missing from the file keep their defaults. Every problem is reported,
// one per line, prefixed with "path:line:" (or "path:" when the line is not
// known) and naming the full key, e.g.
//
//	config.toml:12: unknown key network.host_prot (did you mean network.host_port?)
//	config.toml:3: network.host_port: wrong type: expected integer, got string
//	config.toml:7: cluster.bootstrap_expect: must be at least 1
//
// The errors wrap ErrSyntax, ErrUnknownKey, ErrWrongType or ErrInvalid.
// Load is safe for concurrent use; it only reads the file.
func Load(path string) (Config, error) {
	c, src, err := parseFile(path)
	if err != nil {
		return Config{}, err
	}
	if err := src.validate(c, nil); err != nil {
		return Config{}, err
	}
	return c, nil
}

// LoadOptional is Load, except that an empty path means no file: it returns
// Default().
func LoadOptional(path string) (Config, error) {
	if path == "" {
		return Default(), nil
	}
	return Load(path)
}

// Parse is Load for file contents already in memory; name is used in error
// messages in place of a file path.
func Parse(name string, text string) (Config, error) {
	c, src, err := parse(name, text)
	if err != nil {
		return Config{}, err
	}
	if err := src.validate(c, nil); err != nil {
		return Config{}, err
	}
	return c, nil
}

// source is a parsed config file, kept to locate keys in error messages.
type source struct {
	name string
	text string
}

// where returns "name:line" for key, or "name" when the key is not in the
// file, or "" when there is no file at all (s is nil).
func (s *source) where(key []string) string {
	if s == nil {
		return ""
	}
	if line := keyLine(s.text, key); line > 0 {
		return fmt.Sprintf("%s:%d", s.name, line)
	}
	return s.name
}

// validate validates c and prefixes each problem with where it came from: the
// flag that set the key (flagged maps key → flag name), else the file position.
func (s *source) validate(c Config, flagged map[string]string) error {
	problems := c.problems()
	if len(problems) == 0 {
		return nil
	}
	errs := make([]error, len(problems))
	for i, p := range problems {
		switch {
		case flagged[p.key] != "":
			errs[i] = fmt.Errorf("flag --%s: %w", flagged[p.key], p)
		case s != nil:
			errs[i] = fmt.Errorf("%s: %w", s.where(strings.Split(p.key, ".")), p)
		default:
			errs[i] = p
		}
	}
	return errors.Join(errs...)
}

func parseFile(path string) (Config, *source, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, nil, fmt.Errorf("read config: %w", err)
	}
	return parse(path, string(data))
}

// parse decodes text over Default(). It checks every key of the file against
// the settings table itself instead of letting toml decode into Config, so
// that unknown keys and wrong types can be reported with their line.
func parse(name, text string) (Config, *source, error) {
	src := &source{name: name, text: text}
	var raw map[string]any
	md, err := toml.Decode(text, &raw)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return Config{}, nil, fmt.Errorf("%s:%d: %w: %s", name, pe.Position.Line, ErrSyntax, pe.Message)
		}
		return Config{}, nil, fmt.Errorf("%s: %w: %w", name, ErrSyntax, err)
	}

	byKey := make(map[string]setting)
	for _, s := range settings() {
		byKey[s.key()] = s
	}
	known := make(map[string]bool)
	for _, s := range sections() {
		known[s.name] = true
	}

	c := Default()
	var errs []error
	reported := make(map[string]bool) // keys already reported; skip what is under them
	report := func(key []string, err error) {
		reported[strings.Join(key, ".")] = true
		errs = append(errs, fmt.Errorf("%s: %w", src.where(key), err))
	}
	for _, k := range md.Keys() {
		if reported[k[0]] || (len(k) > 1 && reported[k[0]+"."+k[1]]) {
			continue
		}
		if !known[k[0]] {
			report(k[:1], unknownKey(k[:1]))
			continue
		}
		if len(k) == 1 {
			if v := lookup(raw, k); typeName(v) != "table" {
				report(k, fmt.Errorf("%s: %w: expected table, got %s", k[0], ErrWrongType, typeName(v)))
			}
			continue
		}
		s, ok := byKey[k[0]+"."+k[1]]
		if !ok {
			report(k[:2], unknownKey(k[:2]))
			continue
		}
		if len(k) > 2 {
			// A sub-key under a setting: the setting holds a table.
			report(k[:2], fmt.Errorf("%s: %w: expected %s, got table", s.key(), ErrWrongType, wantName(s.field(&c))))
			continue
		}
		if err := assign(s.field(&c), lookup(raw, k)); err != nil {
			report(k, fmt.Errorf("%s: %w", s.key(), err))
		}
	}
	if len(errs) > 0 {
		return Config{}, nil, errors.Join(errs...)
	}
	return c, src, nil
}

// unknownKey builds the error for an unknown key, with a suggestion when a
// known key is a small typo away.
func unknownKey(key []string) error {
	k := strings.Join(key, ".")
	var candidates []string
	if len(key) == 1 {
		for _, s := range sections() {
			candidates = append(candidates, s.name)
		}
	} else {
		for _, s := range settings() {
			candidates = append(candidates, s.key())
		}
	}
	if best, ok := api.Closest(k, candidates); ok {
		return fmt.Errorf("%w %s (did you mean %s?)", ErrUnknownKey, k, best)
	}
	return fmt.Errorf("%w %s", ErrUnknownKey, k)
}

// lookup returns the decoded value at key, or nil.
func lookup(raw map[string]any, key []string) any {
	var v any = raw
	for _, k := range key {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// assign stores the decoded TOML value v at the pointer p from a setting,
// or reports a wrong type.
func assign(p any, v any) error {
	wrong := func() error {
		return fmt.Errorf("%w: expected %s, got %s", ErrWrongType, wantName(p), typeName(v))
	}
	switch p := p.(type) {
	case *string:
		s, ok := v.(string)
		if !ok {
			return wrong()
		}
		*p = s
	case *int:
		i, ok := v.(int64)
		if !ok {
			return wrong()
		}
		if int64(int(i)) != i {
			return fmt.Errorf("%w: integer %d out of range", ErrWrongType, i)
		}
		*p = int(i)
	case *bool:
		b, ok := v.(bool)
		if !ok {
			return wrong()
		}
		*p = b
	case *[]string:
		arr, ok := v.([]any)
		if !ok {
			return wrong()
		}
		out := make([]string, 0, len(arr))
		for i, e := range arr {
			s, ok := e.(string)
			if !ok {
				return fmt.Errorf("%w: expected array of strings, element %d is %s", ErrWrongType, i+1, typeName(e))
			}
			out = append(out, s)
		}
		*p = out
	default:
		return fmt.Errorf("setting of unsupported Go type %T", p)
	}
	return nil
}

// wantName names the TOML type a setting pointer accepts.
func wantName(p any) string {
	switch p.(type) {
	case *string:
		return "string"
	case *int:
		return "integer"
	case *bool:
		return "boolean"
	case *[]string:
		return "array of strings"
	}
	return fmt.Sprintf("%T", p)
}

// typeName names the TOML type of a decoded value.
func typeName(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case int64:
		return "integer"
	case float64:
		return "float"
	case bool:
		return "boolean"
	case []any:
		return "array"
	case []map[string]any:
		return "array of tables"
	case map[string]any:
		return "table"
	case nil:
		return "nothing"
	}
	return "datetime"
}
