package main

import (
	"context"

	"github.com/hakuriver/hakuriver-ha/cluster"
	"github.com/hakuriver/hakuriver-ha/runner/executor/docker"
)

// dockerEnvironments serves cluster.Environments with the runner's Docker
// package: the host declares what it needs, this composition root plugs
// the implementation in (cluster never imports runner).
type dockerEnvironments struct{ m *docker.Manager }

var _ cluster.Environments = dockerEnvironments{}

// Scoped implements cluster.Environments.
func (d dockerEnvironments) Scoped(clusterID string, adopt func(name string) bool) cluster.EnvironmentScope {
	return scopedEnvironments{d.m.Scoped(clusterID, adopt)}
}

// scopedEnvironments is a docker.Manager confined to one cluster; every
// method but Shell is the Manager's own.
type scopedEnvironments struct{ *docker.Manager }

// Shell implements cluster.EnvironmentScope; a failed call returns a nil
// interface, not a nil *docker.Session in one.
func (s scopedEnvironments) Shell(ctx context.Context, name string, rows, cols uint) (cluster.EnvShell, error) {
	sess, err := s.Manager.Shell(ctx, name, rows, cols)
	if err != nil {
		return nil, err
	}
	return sess, nil
}
