package config

import (
	"fmt"
	"slices"

	"github.com/spf13/pflag"
)

// BindFlags registers on fs one flag per config key, named after the key with
// "_" → "-" (network.host_port → --host-port), plus the aliases --bind
// (host_bind_ip), --advertise (host_reachable_address), --api-port (host_port)
// and --ssh-proxy-port (host_ssh_proxy_port). --join is a string slice
// (repeatable, or comma-separated); --additional-mounts is repeatable and
// keeps commas. It does not register --config.
//
// The values in c are the defaults shown in the help, and the parsed values
// are stored into c; pass a copy of Default(). c is not the effective
// configuration: after parsing, call Resolve, which layers the file under the
// flags the user actually set. BindFlags panics, as pflag does, when fs
// already has a flag of one of these names.
func BindFlags(fs *pflag.FlagSet, c *Config) {
	for _, s := range settings() {
		usage := fmt.Sprintf("%s (config %s)", s.help, s.key())
		if _, ok := s.field(c).(*[]string); ok {
			usage += "; repeatable"
		}
		bindFlag(fs, s, s.flag(), usage, c)
		for _, alias := range s.aliases {
			bindFlag(fs, s, alias, fmt.Sprintf("alias of --%s", s.flag()), c)
		}
	}
}

func bindFlag(fs *pflag.FlagSet, s setting, name, usage string, c *Config) {
	switch p := s.field(c).(type) {
	case *string:
		fs.StringVar(p, name, *p, usage)
	case *int:
		fs.IntVar(p, name, *p, usage)
	case *bool:
		fs.BoolVar(p, name, *p, usage)
	case *[]string:
		if s.noSplit {
			fs.StringArrayVar(p, name, *p, usage)
		} else {
			fs.StringSliceVar(p, name, *p, usage)
		}
	}
}

// Resolve returns the effective configuration after fs has been parsed: the
// file at path over Default() (no file when path is ""), then every flag
// registered by BindFlags that the user set (fs.Changed) on top, then
// Validate. A slice flag replaces the file's list rather than extending it.
// Errors are those of Load; a validation error about a key set by a flag names
// the flag instead of the file, e.g.
// "flag --bootstrap-expect: cluster.bootstrap_expect: must be at least 1, got 0".
func Resolve(fs *pflag.FlagSet, path string) (Config, error) {
	c := Default()
	var src *source
	if path != "" {
		var err error
		if c, src, err = parseFile(path); err != nil {
			return Config{}, err
		}
	}
	flagged, err := applyFlags(fs, &c)
	if err != nil {
		return Config{}, err
	}
	if err := src.validate(c, flagged); err != nil {
		return Config{}, err
	}
	return c, nil
}

// applyFlags copies the value of every changed flag into c and returns which
// flag set each key (key → flag name).
func applyFlags(fs *pflag.FlagSet, c *Config) (map[string]string, error) {
	flagged := make(map[string]string)
	for _, s := range settings() {
		for _, name := range s.flagNames() {
			if fs.Lookup(name) == nil || !fs.Changed(name) {
				continue
			}
			if err := applyFlag(fs, name, s.field(c)); err != nil {
				return nil, fmt.Errorf("flag --%s: %w", name, err)
			}
			flagged[s.key()] = name
		}
	}
	return flagged, nil
}

func applyFlag(fs *pflag.FlagSet, name string, p any) error {
	var err error
	switch p := p.(type) {
	case *string:
		*p, err = fs.GetString(name)
	case *int:
		*p, err = fs.GetInt(name)
	case *bool:
		*p, err = fs.GetBool(name)
	case *[]string:
		sv, ok := fs.Lookup(name).Value.(pflag.SliceValue)
		if !ok {
			return fmt.Errorf("%w: not a list flag", ErrWrongType)
		}
		*p = slices.Clone(sv.GetSlice())
	}
	if err != nil {
		return fmt.Errorf("read flag value: %w", err)
	}
	return nil
}
