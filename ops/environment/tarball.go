package environment

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"time"
)

// MaxVersionSkew is how far beyond now a tarball's version may lie before
// it counts as one from the future: create-tar does not number its new
// version after such a file and prunes it, listings hide it, and runners
// never load it.
const MaxVersionSkew = 24 * time.Hour

// tarballRE matches <env>-<unix timestamp>.tar, the original's pattern
// restricted to lower-case names (the original dropped the others).
var tarballRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^([a-z0-9][a-z0-9._-]*)-(\d+)\.tar$`) })

// Tarball is one saved version of an environment.
type Tarball struct {
	// Env is the environment name and Version the Unix timestamp in the
	// file name.
	Env     string
	Version int64
	// Path is the file's absolute path; Size its length in bytes.
	Path string
	Size int64
	// SHA256 is the hex SHA-256 of the file: set by create-tar, and what a
	// runner verifies; empty in listings.
	SHA256 string
}

// TarballName is the file name of an environment version.
func TarballName(env string, version int64) string {
	return env + "-" + strconv.FormatInt(version, 10) + ".tar"
}

// ParseTarballName returns the environment and version of a file named
// TarballName(env, version); ok is false for any other name.
func ParseTarballName(file string) (env string, version int64, ok bool) {
	m := tarballRE().FindStringSubmatch(file)
	if m == nil {
		return "", 0, false
	}
	v, err := strconv.ParseInt(m[2], 10, 64)
	if err != nil {
		return "", 0, false // more digits than an int64: not one of ours
	}
	return m[1], v, true
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
		env, v, ok := ParseTarballName(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		out[env] = append(out[env], Tarball{Env: env, Version: v, Path: filepath.Join(dir, e.Name()), Size: info.Size()})
	}
	for _, list := range out {
		sort.Slice(list, func(i, j int) bool { return list[i].Version > list[j].Version })
	}
	return out, nil
}
