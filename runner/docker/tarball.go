package docker

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
)

// tarballRE matches <env>-<unix timestamp>.tar, the original's pattern
// restricted to lower-case names (the original dropped the others).
var tarballRE = regexp.MustCompile(`^([a-z0-9][a-z0-9._-]*)-(\d+)\.tar$`)

// Tarball is one saved version of an environment.
type Tarball struct {
	// Env is the environment name and Version the Unix timestamp in the
	// file name.
	Env     string
	Version int64
	// Path is the file's absolute path; Size its length in bytes.
	Path string
	Size int64
	// SHA256 is the hex SHA-256 of the file: set by CreateTarball, and
	// what a Syncer verifies; empty in listings.
	SHA256 string
}

// TarballName is the file name of an environment version.
func TarballName(env string, version int64) string {
	return env + "-" + strconv.FormatInt(version, 10) + ".tar"
}

// ListTarballs lists the tarballs in dir by environment, newest first. A
// missing dir holds none.
func ListTarballs(dir string) (map[string][]Tarball, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string][]Tarball{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list tarballs in %s: %w", dir, err)
	}
	out := map[string][]Tarball{}
	for _, e := range entries {
		m := tarballRE.FindStringSubmatch(e.Name())
		if m == nil || !e.Type().IsRegular() {
			continue
		}
		v, err := strconv.ParseInt(m[2], 10, 64)
		if err != nil {
			continue // more digits than an int64: not one of ours
		}
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		out[m[1]] = append(out[m[1]], Tarball{Env: m[1], Version: v, Path: filepath.Join(dir, e.Name()), Size: info.Size()})
	}
	for _, list := range out {
		sort.Slice(list, func(i, j int) bool { return list[i].Version > list[j].Version })
	}
	return out, nil
}

// pruneTarballs removes every tarball of env newer than newest (none is
// ours: create-tar just saved newest, and a newer file would come from the
// future) and all but the newest keep of the others.
func pruneTarballs(dir, env string, keep int, newest int64) (removed []string, err error) {
	all, err := ListTarballs(dir)
	if err != nil {
		return nil, err
	}
	var errs []error
	kept := 0
	for _, tb := range all[env] {
		if tb.Version <= newest && kept < keep {
			kept++
			continue
		}
		if err := os.Remove(tb.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove old tarball: %w", err))
			continue
		}
		removed = append(removed, tb.Path)
	}
	return removed, errors.Join(errs...)
}
