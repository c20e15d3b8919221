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
	method, path := api.RequestLayer(api.RouteCopyLayer, name, layer)
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

// CopyOut has the remote copy its container name to this host as newName
// (lodge copy REMOTE:NAME NEW): it sends it to its remote for this host,
// found by fingerprint, this host's certificate (lodge serve's), through
// this host's lodge serve. progress gets the remote's progress lines.
func (c *Client) CopyOut(ctx context.Context, name, newName, fingerprint string, progress func(format string, args ...any)) (manager.CopyToResult, error) {
	var res manager.CopyToResult
	return res, c.do(ctx, api.RouteCopyOut, name, api.CopyOutRequest{Name: newName, Fingerprint: fingerprint}, &res, progress)
}
