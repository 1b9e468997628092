package resources

import "errors"

// ErrGPUQuery marks a failed nvidia-smi query. It is a partial failure:
// Detect and Sampler.Sample still return every other figure, with an empty
// GPU list, together with an error wrapping ErrGPUQuery. Callers that should
// keep going without GPU data (registration, heartbeats) test for it with
// errors.Is and log it as a warning. A machine without nvidia-smi is not an
// error at all: it simply has no GPUs.
var ErrGPUQuery = errors.New("query gpus with nvidia-smi")
