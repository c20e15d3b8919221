// Package server is lodge's /proc and /sys views server (the lodge-lxcfs
// binary): a FUSE tree whose files are rendered, per read, for the container
// of the calling process (index.go finds it, views.go renders and caches,
// tree.go is the FUSE side), and the re-attachment of a new server's views
// into running containers (main.go). See docs/lxcfs.md.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"lodge/internal/atomicfile"
	"lodge/internal/cgroup"
	"lodge/internal/parallel"
	"lodge/internal/store"
	"lodge/lxcfs"
)

// Serve mounts the views of the lodge root's containers and serves them until
// ctx ends. Containers started before (by an earlier server that died or was
// upgraded) get the new mounts through reattach.
func Serve(ctx context.Context, root string, reattach func(*Container) error, log *slog.Logger) error {
	st, err := store.Open(root)
	if err != nil {
		return err
	}
	host, err := cgroup.DetectHost()
	if err != nil {
		return err
	}
	lock, err := lockServer(st)
	if err != nil {
		return err
	}
	defer lock.Close()
	mnt := lxcfs.MountPoint(st)
	if err := prepareMountPoint(mnt); err != nil {
		return err
	}
	index := NewIndex(st, host)
	views := NewViews(index)
	if _, err := mount(mnt, views); err != nil {
		return err
	}
	// Not server.Unmount, which waits for the connection to end: the views
	// mounted in running containers keep it open. Detaching the host's
	// mount and exiting ends it; a new server re-attaches them.
	defer unix.Unmount(mnt, unix.MNT_DETACH)
	if err := writeState(st); err != nil {
		return err
	}
	defer os.Remove(lxcfs.StatePath(st))
	log.Info("serving", "mountpoint", mnt)
	reattachAll(index, reattach, log)
	if err := notifyReady(); err != nil {
		log.Warn("serving, but systemd was not told", "err", err)
	}
	go views.loads.run(ctx)
	<-ctx.Done()
	log.Info("stopping", "cause", context.Cause(ctx))
	return context.Cause(ctx)
}

// ErrOtherServer means another server already serves this root; a
// supervisor that started this one stops (exit status 0).
var ErrOtherServer = errors.New("another views server serves this lodge root")

// lockServer takes the root's server lock, held for the server's life, so
// that two servers (a supervisor's restart racing a new start) never take
// each other's mount point away.
func lockServer(st *store.Store) (*os.File, error) {
	if err := os.MkdirAll(lxcfs.Dir(st), lxcfs.DirMode); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(lxcfs.Dir(st), "server.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, ErrOtherServer
		}
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return f, nil
}

// prepareMountPoint makes the mount point, lazily unmounting what a server
// that died left there (its connection is gone: reads fail with ENOTCONN).
func prepareMountPoint(mnt string) error {
	// Unmount first: on a dead server's mount even stat fails (ENOTCONN).
	for i := 0; i < 10; i++ {
		if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
			break
		}
	}
	if err := os.MkdirAll(mnt, 0o711); err != nil {
		return fmt.Errorf("lxcfs mount point: %w", err)
	}
	os.Chmod(filepath.Dir(mnt), lxcfs.DirMode)
	return nil
}

func mount(mnt string, views *Views) (*fuse.Server, error) {
	zero := time.Duration(0)
	fixedEntries := time.Hour // see tree.go: only fixed names are cached
	opts := &fs.Options{
		MountOptions: fuse.MountOptions{
			AllowOther:        true, // containers' processes read it, under their own uids
			FsName:            "lodge-lxcfs",
			Name:              "lodge-lxcfs",
			DirectMountStrict: true,
			// ro: nothing is ever written through, passed-through host
			// files included; default_permissions: the kernel checks modes.
			Options:       []string{"ro", "default_permissions"},
			MaxBackground: 64,
			// LODGE_LXCFS_DEBUG=1 logs every FUSE request (to the log file).
			Debug: os.Getenv("LODGE_LXCFS_DEBUG") == "1",
		},
		EntryTimeout:    &fixedEntries,
		AttrTimeout:     &zero,
		NegativeTimeout: &zero,
	}
	server, err := fs.Mount(mnt, &rootNode{views: views}, opts)
	if err != nil {
		return nil, fmt.Errorf("mount lxcfs at %s: %w", mnt, err)
	}
	return server, nil
}

func writeState(st *store.Store) error {
	self, err := store.ProcessOf(os.Getpid())
	if err != nil {
		return err
	}
	state := lxcfs.ServerState{Server: self, BootID: store.BootID()}
	if parent, err := store.ProcessOf(os.Getppid()); err == nil && os.Getenv(lxcfs.SupervisedEnv) != "" {
		state.Supervisor = parent
	}
	data, _ := json.Marshal(state)
	// Runtime state: atomic for readers, stale after a reboot by its boot
	// id, so no fsync (see atomicfile.WriteRuntime).
	return atomicfile.WriteRuntime(lxcfs.StatePath(st), data, 0o600)
}

// reattachAll gives every running container the new server's mounts,
// reattachWorkers at a time: until its turn, a container's reads fail
// (ENOTCONN), and one after the other, 500 containers waited 40 s for the
// last one on a 2-CPU host; each reattach mostly waits for its helper
// process to start and enter the container's namespaces.
func reattachAll(index *Index, reattach func(*Container) error, log *slog.Logger) {
	if reattach == nil {
		return
	}
	var enabled []*Container
	for _, c := range index.Running() {
		if c.Enabled {
			enabled = append(enabled, c)
		}
	}
	parallel.ForEach(len(enabled), reattachWorkers, func(i int) {
		c := enabled[i]
		if err := reattach(c); err != nil {
			log.Warn("reattach views", "container", c.Name, "err", err)
			return
		}
		log.Info("reattached views", "container", c.Name)
	})
}

// reattachWorkers is how many containers reattachAll serves at a time.
const reattachWorkers = 8
