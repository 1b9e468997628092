package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// render writes every setting of c as a config file, as WriteDefault does
// for Default().
func render(c Config) string {
	var b strings.Builder
	all := settings()
	for _, sec := range sections() {
		b.WriteString("[" + sec.name + "]\n")
		for _, s := range all {
			if s.section == sec.name {
				b.WriteString(s.name + " = " + tomlValue(s.field(&c)) + "\n")
			}
		}
	}
	return b.String()
}

// unknownName returns a section or key of the decoded file that is not in
// the settings table, or "".
func unknownName(raw map[string]any) string {
	keys := map[string]bool{}
	for _, s := range settings() {
		keys[s.key()] = true
	}
	secs := map[string]bool{}
	for _, s := range sections() {
		secs[s.name] = true
	}
	for name, v := range raw {
		if !secs[name] {
			return name
		}
		if tbl, ok := v.(map[string]any); ok {
			for k := range tbl {
				if !keys[name+"."+k] {
					return name + "." + k
				}
			}
		}
	}
	return ""
}

// FuzzParse checks the config file parser. It never panics; a refused file
// gives a zero Config and an error every line of which names the file and
// wraps one of the package's errors; a file with an unknown section or key
// is refused with ErrUnknownKey; an accepted file is one TOML accepts, its
// Config passes Validate, and written back key by key it parses to the
// same Config.
func FuzzParse(f *testing.F) {
	var def strings.Builder
	if err := WriteDefault(&def); err != nil {
		f.Fatal(err)
	}
	f.Add(def.String())
	f.Add(render(Default()))
	for _, s := range []string{"", "[network]\nhost_port = 8000\n", "[network]\nhost_prot = 1\n", "[netwrok]\nx = 1\n",
		"network = 1\n", "[network.host_port]\nx = 1\n", "[[network]]\n", "[network]\nhost_port = \"8000\"\n",
		"[network]\nhost_port = 99999999999999999999\n", "[network]\nhost_port = 1.5\n", "[cluster]\nbootstrap_expect = 0\n",
		"[paths]\nshared_dir = \"/a\\u0000b\"\n", "[cluster]\njoin = [\"a\", 1]\n", "[timing]\nheartbeat_interval = -1\n",
		"[tls]\ncert_file = \"x\"\n", "[auth]\nanonymous_role = \"god\"\n", "a = 1979-05-27T07:32:00Z\n", "[network]\n[network]\n"} {
		f.Add(s)
	}
	sentinels := []error{ErrSyntax, ErrUnknownKey, ErrWrongType, ErrInvalid}
	f.Fuzz(func(t *testing.T, text string) {
		c, err := Parse("fuzz.toml", text)
		var raw map[string]any
		_, tomlErr := toml.Decode(text, &raw)
		if tomlErr == nil {
			if name := unknownName(raw); name != "" && !errors.Is(err, ErrUnknownKey) {
				t.Fatalf("unknown key %q not refused: %v", name, err)
			}
		}
		if err != nil {
			if !reflect.DeepEqual(c, Config{}) {
				t.Fatalf("refused with a non-zero Config: %v", err)
			}
			errs := []error{err}
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				errs = j.Unwrap()
			}
			for _, e := range errs {
				if !strings.HasPrefix(e.Error(), "fuzz.toml") {
					t.Fatalf("error %q does not name the file", e)
				}
				known := false
				for _, s := range sentinels {
					known = known || errors.Is(e, s)
				}
				if !known {
					t.Fatalf("error %q wraps none of the package's errors", e)
				}
			}
			return
		}
		if tomlErr != nil {
			t.Fatalf("accepted a file TOML refuses: %v", tomlErr)
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted a Config that fails validation: %v", err)
		}
		c2, err := Parse("again.toml", render(c))
		if err != nil || !reflect.DeepEqual(c, c2) {
			t.Fatalf("written back, the Config reads differently (%v):\n%+v\n%+v", err, c, c2)
		}
	})
}
