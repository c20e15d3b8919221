package client

import (
	"context"
	"io"

	"lodge/manager"
	"lodge/remote/api"
)

// Target is the remote host as the target of a migration: the
// manager.MigrationTarget that lodge migrate gives Manager.Migrate. Each
// call is one request; the streams go as the requests' bodies, read from
// the source's pipe as the remote takes them (never held in memory).
type Target struct {
	c *Client
}

// Target is this remote as a migration's target.
func (c *Client) Target() *Target { return &Target{c: c} }

var _ manager.MigrationTarget = (*Target)(nil)

// streamType is a tree stream's content type (migrate.SendTree: a tar stream).
const streamType = "application/x-tar"

// Preflight implements manager.MigrationTarget.
func (t *Target) Preflight(ctx context.Context, offer manager.MigrationOffer) (manager.MigrationAnswer, error) {
	var ans manager.MigrationAnswer
	return ans, t.c.do(ctx, api.RouteMigrationPreflight, offer.Name, offer, &ans, nil)
}

// ReceiveLayer implements manager.MigrationTarget.
func (t *Target) ReceiveLayer(ctx context.Context, name, layer string, r io.Reader) error {
	method, path := api.RequestLayer(api.RouteMigrationLayer, name, layer)
	return t.c.send(ctx, method, path, streamType, body(r), nil, nil)
}

// ReceiveRootfs implements manager.MigrationTarget.
func (t *Target) ReceiveRootfs(ctx context.Context, name string, r io.Reader) error {
	return t.stream(ctx, api.RouteMigrationRootfs, name, r)
}

// ReceiveCheckpoint implements manager.MigrationTarget.
func (t *Target) ReceiveCheckpoint(ctx context.Context, name string, r io.Reader) error {
	return t.stream(ctx, api.RouteMigrationCheckpoint, name, r)
}

func (t *Target) stream(ctx context.Context, route, name string, r io.Reader) error {
	method, path := api.Request(route, name)
	return t.c.send(ctx, method, path, streamType, body(r), nil, nil)
}

// body keeps the transport from closing the source's pipe (an io.Pipe's
// reader is a ReadCloser): the sender then fails with the source's "the
// receiver stopped", and the error said is the receiver's (the remote's).
func body(r io.Reader) io.Reader { return io.NopCloser(r) }

// Restore implements manager.MigrationTarget.
func (t *Target) Restore(ctx context.Context, name string) (manager.MigrationRestored, error) {
	var done manager.MigrationRestored
	return done, t.c.do(ctx, api.RouteMigrationRestore, name, nil, &done, nil)
}

// Commit implements manager.MigrationTarget.
func (t *Target) Commit(ctx context.Context, name string) error {
	return t.c.do(ctx, api.RouteMigrationCommit, name, nil, nil, nil)
}

// Abort implements manager.MigrationTarget.
func (t *Target) Abort(ctx context.Context, name string) error {
	return t.c.do(ctx, api.RouteMigrationAbort, name, nil, nil, nil)
}
