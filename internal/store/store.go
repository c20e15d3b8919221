// Package store owns lodge's directory tree: where each container's
// configuration, root filesystem, logs and runtime state live under the root
// directory (default /var/lib/lodge), and the locks that serialise changes.
//
//	ROOT/containers/NAME/config.toml   the container's configuration
//	ROOT/containers/NAME/rootfs/       its root filesystem, natural ids on disk
//	ROOT/containers/NAME/shift.json    present when ownership was shifted by chown
//	ROOT/containers/NAME/storage.json  the storage backend that made rootfs/ (package storage)
//	ROOT/containers/NAME/log/          monitor.log, console.log
//	ROOT/images/                       template and image cache
//	ROOT/run/NAME.json                 runtime state of a running container
//	ROOT/run/NAME.sock                 its monitor's socket
//	ROOT/tmp/                          containers being created or deleted
//	ROOT/idmap.json                    the id range allocations
//	ROOT/events/                       the event log (package events)
package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// DefaultRoot is where lodge keeps its state unless --root or LODGE_ROOT says otherwise.
const DefaultRoot = "/var/lib/lodge"

// Store is one lodge root directory.
type Store struct {
	Root string
}

// Open returns the store at root. It creates nothing: commands that only
// read (list, info) leave a missing root missing; Prepare makes the layout.
func Open(root string) (*Store, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("lodge root %q: %w", root, err)
	}
	return &Store{Root: abs}, nil
}

// Prepare creates the store's top-level directories, for commands that write.
// The ones that hold root filesystems (tmp, images) are root-only: an image's
// files have host ids, so a setuid-root program in one would run as root for
// any host user who could reach it. Containers' own directories are private
// too, so containers/ and run/ need only be traversable (for the views
// server's mount). Modes an older lodge left are fixed here.
func (s *Store) Prepare() error {
	// A root lodge makes is traversable (0711, whatever the umask): the
	// networks' dnsmasq runs as its own user and reads its files below it.
	if _, err := os.Stat(s.Root); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(s.Root, 0o711); err != nil {
			return fmt.Errorf("prepare lodge root %s: %w", s.Root, err)
		}
		if err := os.Chmod(s.Root, 0o711); err != nil {
			return fmt.Errorf("prepare lodge root %s: %w", s.Root, err)
		}
	}
	dirs := []struct {
		path string
		mode os.FileMode
	}{{s.containersDir(), 0o711}, {s.RunDir(), 0o711}, {s.TmpDir(), 0o700}, {s.ImagesDir(), 0o700}}
	for _, d := range dirs {
		if err := os.MkdirAll(d.path, d.mode); err != nil {
			return fmt.Errorf("prepare lodge root %s: %w", s.Root, err)
		}
		if err := restrictMode(d.path, d.mode); err != nil {
			return fmt.Errorf("prepare lodge root %s: %w", s.Root, err)
		}
	}
	return nil
}

// restrictMode takes away the permissions of dir that mode lacks.
func restrictMode(dir string, mode os.FileMode) error {
	fi, err := os.Stat(dir) // a symlink (moved elsewhere by root) is followed
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if perm := fi.Mode().Perm(); perm&^mode != 0 {
		return os.Chmod(dir, perm&mode)
	}
	return nil
}

func (s *Store) containersDir() string { return filepath.Join(s.Root, "containers") }

// RunDir holds runtime state: state files and monitor sockets.
func (s *Store) RunDir() string { return filepath.Join(s.Root, "run") }

// TmpDir holds containers being created or deleted; it is on the same
// filesystem as the containers, so moving one in or out is an atomic rename.
func (s *Store) TmpDir() string { return filepath.Join(s.Root, "tmp") }

// ImagesDir holds the template and image cache.
func (s *Store) ImagesDir() string { return filepath.Join(s.Root, "images") }

// EventsDir holds the root's event log (package events).
func (s *Store) EventsDir() string { return filepath.Join(s.Root, "events") }

// StopReasonPath holds why a running container's init is about to end
// when its monitor cannot know (a checkpoint --stop or a migration: CRIU
// kills the tree): the monitor reports it in its stopped event.
func (s *Store) StopReasonPath(name string) string {
	return filepath.Join(s.RunDir(), name+".stop-reason")
}

// IDMapPath is the id range allocation table.
func (s *Store) IDMapPath() string { return filepath.Join(s.Root, "idmap.json") }

// ContainerDir is the directory of container name.
func (s *Store) ContainerDir(name string) string { return filepath.Join(s.containersDir(), name) }

// CheckpointsDir holds container name's checkpoints, one directory each.
func (s *Store) CheckpointsDir(name string) string {
	return filepath.Join(s.ContainerDir(name), "checkpoints")
}

// ResumeMarkerPath names the checkpoint that the next start of container
// name resumes from (a stateful stop wrote it).
func (s *Store) ResumeMarkerPath(name string) string {
	return filepath.Join(s.CheckpointsDir(name), "resume")
}

// ConfigPath is the configuration file of container name.
func (s *Store) ConfigPath(name string) string {
	return filepath.Join(s.ContainerDir(name), "config.toml")
}

// RootfsPath is the root filesystem of container name.
func (s *Store) RootfsPath(name string) string {
	return filepath.Join(s.ContainerDir(name), "rootfs")
}

// ShiftPath records a chown shift of the root filesystem (see rootfs.Shift).
func (s *Store) ShiftPath(name string) string {
	return filepath.Join(s.ContainerDir(name), "shift.json")
}

// LogDir holds the monitor and console logs of container name.
func (s *Store) LogDir(name string) string { return filepath.Join(s.ContainerDir(name), "log") }

// StatePath is the runtime state file of container name.
func (s *Store) StatePath(name string) string { return filepath.Join(s.RunDir(), name+".json") }

// NICsPath is where a running container's network attachments are
// recorded (network.WriteAttachments): written by start, read by the
// monitor at each boot, removed when the container stops.
func (s *Store) NICsPath(name string) string { return filepath.Join(s.RunDir(), name+".nics.json") }

// BootIDPath holds the boot id of a running container, bound over its
// /proc/sys/kernel/random/boot_id (rootfs.WriteBootID): written at each
// boot, removed with the state when the container stops.
func (s *Store) BootIDPath(name string) string { return filepath.Join(s.RunDir(), name+".boot_id") }

// SocketPath is the monitor socket of container name.
func (s *Store) SocketPath(name string) string { return filepath.Join(s.RunDir(), name+".sock") }

// ErrNotFound is returned for a container that does not exist.
var ErrNotFound = errors.New("container not found")

// Exists reports whether container name exists: whether it has a directory.
// Containers move into ROOT/containers only once complete (and out of it
// first when deleted), so a directory is a container even if its config.toml
// was lost: it must stay visible, stoppable and deletable.
func (s *Store) Exists(name string) bool {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
		return false
	}
	fi, err := os.Lstat(s.ContainerDir(name))
	return err == nil && fi.IsDir()
}

// MustExist returns an error wrapping ErrNotFound, with a hint, if name does not exist.
func (s *Store) MustExist(name string) error {
	if s.Exists(name) {
		return nil
	}
	return fmt.Errorf("container %q: %w in %s (see: lodge list)", name, ErrNotFound, s.Root)
}

// Names lists the containers, sorted.
func (s *Store) Names() ([]string, error) {
	entries, err := os.ReadDir(s.containersDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") && s.Exists(e.Name()) {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}
