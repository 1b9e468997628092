package cluster

import "github.com/hakuriver/hakuriver-ha/cluster/httpapi"

// utf8Prefix is httpapi.UTF8Prefix, under the name docker_test.go uses.
func utf8Prefix(b []byte) int { return httpapi.UTF8Prefix(b) }
