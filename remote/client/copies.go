package client

import (
	"context"
	"io"

	"lodge/manager"
	"lodge/remote/api"
)

// The remote as the target of a copy (lodge copy NAME h2:NEW): the
// manager.CopyTarget that Manager.CopyTo is given. A copy is received there
// as an incoming migration, so Abort and Commit are Target's migration
// calls; these are the copy's own.

var _ manager.CopyTarget = (*Target)(nil)

// AcceptCopy implements manager.CopyTarget.
func (t *Target) AcceptCopy(ctx context.Context, offer manager.CopyOffer) (manager.CopyAnswer, error) {
	var ans manager.CopyAnswer
	return ans, t.c.do(ctx, api.RouteCopyPreflight, offer.Name, offer, &ans, nil)
}

// ReceiveCopyLayer implements manager.CopyTarget.
func (t *Target) ReceiveCopyLayer(ctx context.Context, name, layer string, r io.Reader) error {
	method, path := api.RequestCopyLayer(name, layer)
	return t.c.send(ctx, method, path, streamType, body(r), nil, nil)
}

// ReceiveCopyRootfs implements manager.CopyTarget.
func (t *Target) ReceiveCopyRootfs(ctx context.Context, name string, r io.Reader) error {
	return t.stream(ctx, api.RouteCopyRootfs, name, r)
}

// ReceiveCopySnapshots implements manager.CopyTarget.
func (t *Target) ReceiveCopySnapshots(ctx context.Context, name string, r io.Reader) error {
	return t.stream(ctx, api.RouteCopySnapshots, name, r)
}

// FinishCopy implements manager.CopyTarget.
func (t *Target) FinishCopy(ctx context.Context, name string) (manager.CopyPlaced, error) {
	var placed manager.CopyPlaced
	return placed, t.c.do(ctx, api.RouteCopyFinish, name, nil, &placed, nil)
}
