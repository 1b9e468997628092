package docker

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/hakuriver/hakuriver-ha/ops/environment"
)

// pruneTarballs removes every tarball of env newer than newest (none is
// ours: create-tar just saved newest, and a newer file would come from the
// future) and all but the newest keep of the others.
func pruneTarballs(dir, env string, keep int, newest int64) (removed []string, err error) {
	all, err := environment.ListTarballs(dir)
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
