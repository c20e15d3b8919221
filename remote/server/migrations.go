package server

import (
	"fmt"
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
	return m.AcceptMigration(c.ctx, offer)
}

// The streams are read from the request's body as they come; a client
// that goes away cuts the body, and the receive fails.

func migrationLayer(c *call) (any, error) {
	m, err := c.migrations()
	if err != nil {
		return nil, err
	}
	return api.Empty{}, m.ReceiveMigrationLayer(c.ctx, c.r.PathValue("name"), c.r.PathValue("layer"), c.r.Body)
}

func migrationRootfs(c *call) (any, error) {
	m, err := c.migrations()
	if err != nil {
		return nil, err
	}
	return api.Empty{}, m.ReceiveMigrationRootfs(c.ctx, c.r.PathValue("name"), c.r.Body)
}

func migrationCheckpoint(c *call) (any, error) {
	m, err := c.migrations()
	if err != nil {
		return nil, err
	}
	return api.Empty{}, m.ReceiveMigrationCheckpoint(c.ctx, c.r.PathValue("name"), c.r.Body)
}

func migrationRestore(c *call) (any, error) {
	m, err := c.migrations()
	if err != nil {
		return nil, err
	}
	return m.RestoreMigration(c.ctx, c.r.PathValue("name"))
}

func migrationCommit(c *call) (any, error) {
	m, err := c.migrations()
	if err != nil {
		return nil, err
	}
	return api.Empty{}, m.CommitMigration(c.ctx, c.r.PathValue("name"))
}

func migrationAbort(c *call) (any, error) {
	m, err := c.migrations()
	if err != nil {
		return nil, err
	}
	return api.Empty{}, m.AbortMigration(c.ctx, c.r.PathValue("name"))
}
