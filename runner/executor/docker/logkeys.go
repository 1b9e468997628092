package docker

// Log attribute keys.
const (
	keyTaskID    = "task_id"
	keyErr       = "err"
	keyEnv       = "environment"
	keyImage     = "image"
	keyTarball   = "tarball"
	keyVersion   = "version"
	keyBytes     = "bytes"
	keyContainer = "container"
	keyTook      = "took"
)
