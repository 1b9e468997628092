package doctor

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// probePrefix starts the name of every shared-storage probe file.
const probePrefix = ".hakuriver-doctor-"

// probeMaxAge is how old a probe file may get before WriteProbe removes it.
const probeMaxAge = 10 * time.Minute

// isProbeName reports whether s is a name WriteProbe makes: the prefix and
// 32 lower-case hex digits, nothing else (no path tricks).
func isProbeName(s string) bool {
	rest, found := strings.CutPrefix(s, probePrefix)
	if !found || len(rest) != 32 {
		return false
	}
	for _, c := range rest {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// ProbeFile names a shared-storage probe: the file written into a shared_dir
// and the random token it holds.
type ProbeFile struct {
	Name  string `json:"name"`
	Token string `json:"token"`
	// Writer is the member that wrote it (informative).
	Writer string `json:"writer,omitempty"`
}

// WriteProbe writes a new probe file holding a random token into dir and
// returns its name and token; another node that shares the storage finds the
// same token under the same name with ReadProbe. Probe files older than ten
// minutes are removed on the way, so the directory does not fill up.
func WriteProbe(dir string) (ProbeFile, error) {
	removeStaleProbes(dir, time.Now())
	name, token := make([]byte, 16), make([]byte, 16)
	rand.Read(name)  //nolint:errcheck // crypto/rand.Read never fails
	rand.Read(token) //nolint:errcheck // crypto/rand.Read never fails
	p := ProbeFile{Name: probePrefix + hex.EncodeToString(name), Token: hex.EncodeToString(token)}
	path := filepath.Join(dir, p.Name)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return ProbeFile{}, fmt.Errorf("write storage probe: %w", err)
	}
	if _, err := f.WriteString(p.Token + "\n"); err != nil {
		f.Close()
		os.Remove(path)
		return ProbeFile{}, fmt.Errorf("write storage probe: %w", err)
	}
	// Sync so that a network filesystem shows the content to other nodes.
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
		os.Remove(path)
		return ProbeFile{}, fmt.Errorf("write storage probe: %w", err)
	}
	return p, nil
}

// removeStaleProbes deletes probe files in dir older than probeMaxAge; it is
// best effort.
func removeStaleProbes(dir string, now time.Time) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !isProbeName(e.Name()) {
			continue
		}
		if info, err := e.Info(); err == nil && now.Sub(info.ModTime()) > probeMaxAge {
			os.Remove(filepath.Join(dir, e.Name())) //nolint:errcheck // best effort cleanup
		}
	}
}

// ReadProbe checks that dir holds the probe file name with token, which
// proves that dir is the same storage as where it was written. It never
// returns an error: a missing file, a different token or an unreadable file
// is a failed Check saying so.
func ReadProbe(dir, name, token string) Check {
	const check = "shared storage"
	if !isProbeName(name) {
		return failCheck(check, fmt.Sprintf("probe name %q is not a doctor probe", name), "bad request: a probe name comes from WriteProbe")
	}
	path := filepath.Join(dir, name)
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return failCheck(check, fmt.Sprintf("%s: probe file not found", path),
			"shared_dir is not the same storage as on the writing node: mount the shared filesystem here (df "+dir+") or point shared_dir at its mount")
	case errors.Is(err, fs.ErrPermission):
		return failCheck(check, fmt.Sprintf("%s: %v", path, err),
			"the probe exists but this user cannot read it: check ownership and the export's uid mapping (root_squash, uid/gid options)")
	case err != nil:
		return failCheck(check, fmt.Sprintf("%s: %v", path, err), "shared storage read error: check the mount (stale NFS handle?) and its server")
	}
	if strings.TrimSpace(string(b)) != token {
		return failCheck(check, fmt.Sprintf("%s: holds a different token", path),
			"a different file with that name: a stale cache of the mount or another cluster's shared_dir")
	}
	return okCheck(check, fmt.Sprintf("read back %s in %s", name, dir))
}
