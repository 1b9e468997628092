package config

import (
	"fmt"
	"io"
	"strconv"
	"strings"
)

// fileHeader opens the file WriteDefault writes.
const fileHeader = `# HakuRiver HA configuration.
#
# Every key is optional: a key left out keeps the default written here.
# Every key also has a command-line flag, named after the key with "_"
# replaced by "-" (host_port -> --host-port), that overrides this file.
# Unknown keys are errors. Check a file with: hakuriver config check --config FILE
`

// WriteDefault writes a complete config file holding Default(), every
// section and key preceded by a one-line comment that explains it and names
// its flags. Load reads the output back into exactly Default(). It fails only
// when w fails.
func WriteDefault(w io.Writer) error {
	var b strings.Builder
	b.WriteString(fileHeader)
	c := Default()
	all := settings()
	for _, sec := range sections() {
		fmt.Fprintf(&b, "\n# %s\n[%s]\n", sec.help, sec.name)
		for _, s := range all {
			if s.section != sec.name {
				continue
			}
			names := s.flagNames()
			label := "Flag"
			if len(names) > 1 {
				label = "Flags"
			}
			fmt.Fprintf(&b, "# %s. %s: --%s.\n%s = %s\n", capitalize(s.help), label,
				strings.Join(names, ", --"), s.name, tomlValue(s.field(&c)))
		}
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write default config: %w", err)
	}
	return nil
}

// tomlValue renders the value at a setting pointer as a TOML value.
func tomlValue(p any) string {
	switch p := p.(type) {
	case *string:
		return tomlString(*p)
	case *int:
		return strconv.Itoa(*p)
	case *bool:
		return strconv.FormatBool(*p)
	case *[]string:
		items := make([]string, len(*p))
		for i, s := range *p {
			items[i] = tomlString(s)
		}
		return "[" + strings.Join(items, ", ") + "]"
	}
	return fmt.Sprintf("%v", p)
}

// tomlString renders s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func capitalize(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}
