package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
)

// findProxies asks the cluster where its SSH proxies are
// (api.FindSSHProxies over the --host replicas), within --timeout.
func findProxies(ctx context.Context, g *clientFlags) ([]string, error) {
	cfg, err := g.clientConfig("")
	if err != nil {
		return nil, err
	}
	if cfg.Hosts, err = api.ParseHosts(cfg.Hosts...); err != nil {
		return nil, fmt.Errorf("invalid --host: %w", err)
	}
	ctx, cancel := g.call(ctx)
	defer cancel()
	addrs, err := api.FindSSHProxies(ctx, cfg)
	if errors.Is(err, api.ErrNoSSHProxy) {
		return nil, fmt.Errorf("find the SSH proxy (give --proxy-port PORT to use PORT on the --host replicas): %w", err)
	}
	if err != nil {
		return nil, fmt.Errorf("find the SSH proxy: %w", err)
	}
	return addrs, nil
}
