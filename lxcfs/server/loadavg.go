package server

import (
	"context"
	"sync"
	"time"

	"lodge/internal/store"
	"lodge/lxcfs/cgstats"
	"lodge/lxcfs/render"
)

// A container's load average, like the kernel's: every 5 s the runnable and
// uninterruptible tasks are counted and folded into decaying averages. Only
// containers whose loadavg was read in the last minutes are sampled, and at
// most maxSampledTasks tasks each, so the cost stays bounded however many
// containers and tasks there are (lxcfs's loadavg thread walks them all).
const (
	loadInterval    = 5 * time.Second
	loadKeepAlive   = 10 * time.Minute // stop sampling a container nobody asks about
	maxSampledTasks = 4096
)

type loadSampler struct {
	index *Index

	mu    sync.Mutex
	loads map[string]*containerLoad
}

type containerLoad struct {
	load     render.Load
	lastRead time.Time
}

func newLoadSampler(index *Index) *loadSampler {
	return &loadSampler{index: index, loads: map[string]*containerLoad{}}
}

// Load returns a container's current load, starting to sample it if needed.
func (s *loadSampler) Load(c *Container) render.Load {
	s.mu.Lock()
	defer s.mu.Unlock()
	cl, ok := s.loads[c.Name]
	if !ok {
		cl = &containerLoad{}
		s.loads[c.Name] = cl
		s.sampleLocked(c, cl) // a first count, so the view is not all zeros
	}
	cl.lastRead = time.Now()
	return cl.load
}

// run samples every loadInterval until ctx ends.
func (s *loadSampler) run(ctx context.Context) {
	tick := time.NewTicker(loadInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			s.sampleAll()
		}
	}
}

func (s *loadSampler) sampleAll() {
	running := map[string]*Container{}
	for _, c := range s.index.Running() {
		running[c.Name] = c
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, cl := range s.loads {
		c, ok := running[name]
		if !ok || time.Since(cl.lastRead) > loadKeepAlive {
			delete(s.loads, name)
			continue
		}
		s.sampleLocked(c, cl)
	}
}

func (s *loadSampler) sampleLocked(c *Container, cl *containerLoad) {
	pids, _, err := cgstats.ReadTasks(c.Cgroups, maxSampledTasks)
	if err != nil {
		return
	}
	running, blocked := 0, 0
	for _, pid := range pids {
		switch taskState(pid) {
		case 'R':
			running++
		case 'D':
			blocked++
		}
	}
	cl.load.Running, cl.load.Blocked, cl.load.Total = running, blocked, len(pids)
	cl.load.Sample(running + blocked)
}

// taskState is the state letter of /proc/PID/stat (R, S, D, ...).
func taskState(pid int) byte {
	fields, err := store.StatFields(pid)
	if err != nil {
		return 0
	}
	return fields[0][0]
}
