package server

import (
	"fmt"

	"lodge/manager"
	"lodge/remote/api"
)

// The target's side of a copy from another host (manager/copy_remote_in.go).
// A copy being received is held in memory as an incoming migration, by the
// server's one migration Manager: these routes use it, as do the migration
// routes that carry the copy's abort and commit. The streams are read from
// the request's body as they come; a body cut fails the receive, which
// removes the copy.

func copyPreflight(c *call) (any, error) {
	var offer manager.CopyOffer
	if err := decodeBody(c.r, &offer); err != nil {
		return nil, err
	}
	if name := c.r.PathValue("name"); offer.Name != name {
		return nil, api.Mark(fmt.Errorf("the offer is for %q and the path names %q", offer.Name, name), manager.ErrInvalid)
	}
	m, err := c.migrations()
	if err != nil {
		return nil, err
	}
	return m.AcceptCopy(c.ctx, offer)
}

func copyLayer(c *call) (any, error) {
	m, err := c.migrations()
	if err != nil {
		return nil, err
	}
	return api.Empty{}, m.ReceiveCopyLayer(c.ctx, c.r.PathValue("name"), c.r.PathValue("layer"), c.r.Body)
}

func copyRootfs(c *call) (any, error) {
	m, err := c.migrations()
	if err != nil {
		return nil, err
	}
	return api.Empty{}, m.ReceiveCopyRootfs(c.ctx, c.r.PathValue("name"), c.r.Body)
}

func copySnapshots(c *call) (any, error) {
	m, err := c.migrations()
	if err != nil {
		return nil, err
	}
	return api.Empty{}, m.ReceiveCopySnapshots(c.ctx, c.r.PathValue("name"), c.r.Body)
}

func copyFinish(c *call) (any, error) {
	m, err := c.migrations()
	if err != nil {
		return nil, err
	}
	return m.FinishCopy(c.ctx, c.r.PathValue("name"))
}
