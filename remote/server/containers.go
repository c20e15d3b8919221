package server

import (
	"time"

	"lodge/manager"
	"lodge/remote/api"
)

// The container operations: each decodes its request, calls the manager
// and returns what the manager returned.

func list(c *call) (any, error) {
	m, err := c.manager()
	if err != nil {
		return nil, err
	}
	infos, err := m.List()
	if infos == nil {
		infos = []manager.Info{}
	}
	return infos, err
}

func info(c *call) (any, error) {
	m, err := c.manager()
	if err != nil {
		return nil, err
	}
	return m.Info(c.r.PathValue("name"))
}

func start(c *call) (any, error) {
	var req api.StartRequest
	if err := decodeBody(c.r, &req); err != nil {
		return nil, err
	}
	m, err := c.manager()
	if err != nil {
		return nil, err
	}
	name := c.r.PathValue("name")
	if req.Fresh {
		return api.Empty{}, m.StartFresh(c.ctx, name, c.progress)
	}
	return api.Empty{}, m.Start(c.ctx, name, c.progress)
}

func stop(c *call) (any, error) {
	var req api.StopRequest
	if err := decodeBody(c.r, &req); err != nil {
		return nil, err
	}
	m, err := c.manager()
	if err != nil {
		return nil, err
	}
	opts := manager.StopOptions{Force: req.Force, Timeout: time.Duration(req.TimeoutMillis) * time.Millisecond}
	res, err := m.Stop(c.ctx, c.r.PathValue("name"), opts)
	return api.StopResult{Killed: res.Killed}, err
}
