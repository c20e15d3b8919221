package client

import (
	"context"

	"lodge/manager"
	"lodge/remote/api"
)

// The manager's operations on a remote host, with the manager's
// signatures but a context first.

// Server describes the remote host.
func (c *Client) Server(ctx context.Context) (api.ServerInfo, error) {
	var info api.ServerInfo
	return info, c.do(ctx, api.RouteServer, "", nil, &info, nil)
}

// List is manager.List on the remote.
func (c *Client) List(ctx context.Context) ([]manager.Info, error) {
	var infos []manager.Info
	return infos, c.do(ctx, api.RouteList, "", nil, &infos, nil)
}

// Info is manager.Info on the remote.
func (c *Client) Info(ctx context.Context, name string) (manager.Info, error) {
	var info manager.Info
	return info, c.do(ctx, api.RouteInfo, name, nil, &info, nil)
}

// Start is manager.Start (fresh: StartFresh) on the remote, with its progress.
func (c *Client) Start(ctx context.Context, name string, fresh bool, progress func(format string, args ...any)) error {
	return c.do(ctx, api.RouteStart, name, api.StartRequest{Fresh: fresh}, nil, progress)
}

// Stop is manager.Stop on the remote.
func (c *Client) Stop(ctx context.Context, name string, opts manager.StopOptions) (manager.StopResult, error) {
	var res api.StopResult
	err := c.do(ctx, api.RouteStop, name, api.StopRequest{TimeoutMillis: opts.Timeout.Milliseconds(), Force: opts.Force}, &res, nil)
	return manager.StopResult{Killed: res.Killed}, err
}
