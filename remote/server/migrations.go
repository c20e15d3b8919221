package server

import (
	"context"
	"fmt"
	"io"
	"sync"

	"lodge/manager"
	"lodge/remote/api"
)

// The target's side of a migration. A migration being received is held in
// memory by the Manager that accepted its preflight (manager/migrate_in.go),
// so these routes share one Manager, opened on first use and kept while
// the server runs; Abort and Commit also work from another (after a
// restart), from what is on disk.

// migrationManager is the Manager of the migration routes.
type migrationManager struct {
	mu   sync.Mutex
	m    *manager.Manager
	open func(root string) (*manager.Manager, error)
	root string
}

func (mm *migrationManager) get() (*manager.Manager, error) {
	mm.mu.Lock()
	defer mm.mu.Unlock()
	if mm.m == nil {
		m, err := mm.open(mm.root)
		if err != nil {
			return nil, err
		}
		mm.m = m
	}
	return mm.m, nil
}

func migrationPreflight(c *call) (any, error) {
	var offer manager.MigrationOffer
	if err := decodeOffer(c, &offer, func() string { return offer.Name }); err != nil {
		return nil, err
	}
	m, err := c.migrations()
	if err != nil {
		return nil, err
	}
	return m.AcceptMigration(c.ctx, offer)
}

// decodeOffer reads a preflight's offer from the request's body into offer
// and checks that it names the container the path names.
func decodeOffer(c *call, offer any, offered func() string) error {
	if err := decodeBody(c.r, offer); err != nil {
		return err
	}
	if name := c.r.PathValue("name"); offered() != name {
		return api.Mark(fmt.Errorf("the offer is for %q and the path names %q", offered(), name), manager.ErrInvalid)
	}
	return nil
}

// onIncoming is a route of a migration or a copy being received: op runs
// on the server's one migration Manager (which holds what is received),
// with the container the path names.
func onIncoming(op func(c *call, m *manager.Manager, name string) (any, error)) operation {
	return func(c *call) (any, error) {
		m, err := c.migrations()
		if err != nil {
			return nil, err
		}
		return op(c, m, c.r.PathValue("name"))
	}
}

// receiveStream is a route whose request body is a stream that receive
// takes, read as it comes: a client that goes away cuts the body, and the
// receive fails.
func receiveStream(receive func(m *manager.Manager, ctx context.Context, name string, r io.Reader) error) operation {
	return onIncoming(func(c *call, m *manager.Manager, name string) (any, error) {
		return api.Empty{}, receive(m, c.ctx, name, c.r.Body)
	})
}

// receiveLayer is the layer route of a migration or a copy: the layer the
// path names, received by receive.
func receiveLayer(receive func(m *manager.Manager, ctx context.Context, name, layer string, r io.Reader) error) operation {
	return onIncoming(func(c *call, m *manager.Manager, name string) (any, error) {
		return api.Empty{}, receive(m, c.ctx, name, c.r.PathValue("layer"), c.r.Body)
	})
}

var (
	migrationLayer      = receiveLayer((*manager.Manager).ReceiveMigrationLayer)
	migrationRootfs     = receiveStream((*manager.Manager).ReceiveMigrationRootfs)
	migrationCheckpoint = receiveStream((*manager.Manager).ReceiveMigrationCheckpoint)
	migrationRestore    = onIncoming(func(c *call, m *manager.Manager, name string) (any, error) {
		return m.RestoreMigration(c.ctx, name)
	})
	migrationCommit = onIncoming(func(c *call, m *manager.Manager, name string) (any, error) {
		return api.Empty{}, m.CommitMigration(c.ctx, name)
	})
	migrationAbort = onIncoming(func(c *call, m *manager.Manager, name string) (any, error) {
		return api.Empty{}, m.AbortMigration(c.ctx, name)
	})
)
