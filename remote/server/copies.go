package server

import (
	"fmt"

	"lodge/manager"
	"lodge/remote/api"
	"lodge/remote/client"
)

// The target's side of a copy from another host (manager/copy_remote_in.go).
// A copy being received is held in memory as an incoming migration, by the
// server's one migration Manager: these routes use it, as do the migration
// routes that carry the copy's abort and commit. The streams are read from
// the request's body as they come; a body cut fails the receive, which
// removes the copy.

func copyPreflight(c *call) (any, error) {
	var offer manager.CopyOffer
	if err := decodeOffer(c, &offer, func() string { return offer.Name }); err != nil {
		return nil, err
	}
	m, err := c.migrations()
	if err != nil {
		return nil, err
	}
	return m.AcceptCopy(c.ctx, offer)
}

var (
	copyLayer     = receiveLayer((*manager.Manager).ReceiveCopyLayer)
	copyRootfs    = receiveStream((*manager.Manager).ReceiveCopyRootfs)
	copySnapshots = receiveStream((*manager.Manager).ReceiveCopySnapshots)
	copyFinish    = onIncoming(func(c *call, m *manager.Manager, name string) (any, error) {
		return m.FinishCopy(c.ctx, name)
	})
)

// copyOut is the source's side of a copy asked for by its target (lodge
// copy REMOTE:NAME NEW there): this host sends the container to the remote
// of its own whose pinned certificate the caller names, as lodge copy
// NAME REMOTE:NEW would here, its progress streamed to the caller. The
// caller can only name a host this one already trusts as a remote.
func copyOut(c *call) (any, error) {
	var req api.CopyOutRequest
	if err := decodeBody(c.r, &req); err != nil {
		return nil, err
	}
	remotes, err := client.List(c.root)
	if err != nil {
		return nil, err
	}
	target := ""
	for _, r := range remotes {
		if r.Fingerprint == req.Fingerprint {
			target = r.Name
		}
	}
	if target == "" || req.Fingerprint == "" {
		return nil, api.Mark(fmt.Errorf("this host has no remote for the host asking (certificate %s): add it here first (lodge remote add, with a token of lodge trust add there), and have it run lodge serve", req.Fingerprint), manager.ErrNotFound)
	}
	cl, err := client.Open(c.root, target)
	if err != nil {
		return nil, err
	}
	m, err := c.manager()
	if err != nil {
		return nil, err
	}
	return m.CopyTo(c.ctx, c.r.PathValue("name"), req.Name, cl.Target(), c.progress)
}
