// Package environment holds the rules of HakuRiver's Docker environments
// that the host and the runner must agree on: what an environment may be
// called, the image names its tarballs carry and runners run, how tarball
// files are named and listed in shared storage, the native-container
// marker, and the sentinel errors environment operations wrap. It imports
// only the standard library and lives under ops/ because, like ops/config,
// both cluster and runner import it and it imports neither (cluster never
// imports runner; cluster/api is the wire contract, not these rules).
package environment

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Native is the container name that runs a task without Docker, as a
// process on the runner ("NULL", the original's marker).
const Native = "NULL"

// IsNative reports whether container name asks for the native executor.
// The empty name is not native: it means "the default environment" in a
// submit and "no image" in a run request; callers decide.
func IsNative(name string) bool { return name == Native }

// Sentinel errors of environment operations. Implementations wrap them
// (fmt.Errorf("%w: ...")) and callers match them with errors.Is; the host
// maps them to HTTP statuses (503, 404, 400, 409).
var (
	// ErrUnavailable means the Docker Engine could not be reached.
	ErrUnavailable = errors.New("docker engine unreachable")
	// ErrNotFound means a container, image, environment or tarball does not
	// exist.
	ErrNotFound = errors.New("not found")
	// ErrInvalid means a name, image or mount was malformed.
	ErrInvalid = errors.New("invalid")
	// ErrConflict means the request clashes with the current state: a
	// container of that name exists but is not an environment, the name is
	// taken by another cluster, the environment is not running.
	ErrConflict = errors.New("conflict")
	// ErrNoShell means an environment container has none of the shells a
	// terminal tries. It wraps ErrNotFound.
	ErrNoShell = fmt.Errorf("%w: no suitable shell found in container", ErrNotFound)
)

// nameRE is what an environment name may be: it names a container, the
// image hakuriver/<name>:base and the tarballs <name>-<ts>.tar, so it must
// be lower case.
var nameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,127}$`) })

// CheckName validates an environment name; the error wraps ErrInvalid and
// Reason gives its message without the sentinel's prefix.
func CheckName(name string) error {
	if !nameRE().MatchString(name) {
		return fmt.Errorf("%w: environment name %q: use 1-128 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit", ErrInvalid, name)
	}
	return nil
}

// Reason returns err's message without the "<sentinel>: " prefix that
// wrapping sentinel (one of this package's) put in front of it, for
// messages that name the field themselves.
func Reason(err, sentinel error) string {
	return strings.TrimPrefix(err.Error(), sentinel.Error()+": ")
}

// Image name parts: environment env's image is hakuriver/<env>:base.
const (
	imagePrefix = "hakuriver/"
	baseTag     = ":base"
	clusterTag  = ":c-"
)

// ImageName is the image an environment is committed to and saved as, the
// name inside its tarballs (the original's), and the image a run request
// names for a task in that environment.
func ImageName(env string) string { return imagePrefix + env + baseTag }

// ScopedImageName is the name a runner gives environment env's image of
// cluster (ImageName when cluster is ""), and runs tasks from: two
// clusters sharing one engine, each with an environment of that name, then
// never run each other's image, although both tarballs load as ImageName.
func ScopedImageName(env, cluster string) string {
	if cluster == "" {
		return ImageName(env)
	}
	return imagePrefix + env + clusterTag + cluster
}

// EnvOfImage returns the environment of an image named
// hakuriver/<env>:base, or "" for any other image.
func EnvOfImage(image string) string {
	rest, ok := strings.CutPrefix(image, imagePrefix)
	if !ok {
		return ""
	}
	env, ok := strings.CutSuffix(rest, baseTag)
	if !ok || CheckName(env) != nil {
		return ""
	}
	return env
}

// Container is an environment container as a replica's Docker lists it.
type Container struct {
	ID      string
	Name    string
	Image   string
	Status  string // e.g. "Up 5 minutes", "Exited (0) 3 minutes ago"
	State   string // created, running, paused, exited, ...
	Created time.Time
}

// Progress reports a create-tar step: Stage is "commit", "save" (Bytes of
// about Total written) or "done".
type Progress struct {
	Stage string
	Bytes int64
	Total int64
}
