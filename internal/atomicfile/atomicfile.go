// Package atomicfile replaces files so that a reader, or the file system
// after a crash, sees either the old content or the new, never a mix: the
// data goes to a temporary file in the same directory, which is renamed
// over the target (a rename within one file system is atomic).
//
// Write also makes the result durable (fsync of the file before the rename,
// of the directory after): for records that must survive a crash of the
// host (configuration, id allocations, image metadata). WriteRuntime skips
// the two fsyncs: for runtime state under ROOT/run, which describes
// processes that do not survive a crash either and carries the boot id
// (store.BootID) that marks it stale after one; the fsyncs would add about
// a millisecond each to every container start.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Write replaces path with data durably. perm is applied exactly (the umask
// does not narrow it). A symlink at path is replaced, not followed.
func Write(path string, data []byte, perm os.FileMode) error {
	return replace(path, data, perm, true)
}

// WriteRuntime replaces path with data atomically for readers, without
// fsync: after a crash the file may hold the old content, the new, or be
// empty, never a mix of the two. Only for runtime state that a reader
// recognises as stale after a reboot.
func WriteRuntime(path string, data []byte, perm os.FileMode) error {
	return replace(path, data, perm, false)
}

func replace(path string, data []byte, perm os.FileMode, durable bool) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := fill(tmp, data, perm, durable); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if !durable {
		return nil
	}
	return SyncDir(dir)
}

// fill writes the temporary file and, when durable, makes its content
// durable before the rename publishes it; Close reports late write errors
// (NFS, for one).
func fill(tmp *os.File, data []byte, perm os.FileMode, durable bool) error {
	if err := tmp.Chmod(perm); err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if durable {
		if err := tmp.Sync(); err != nil {
			return err
		}
	}
	return tmp.Close()
}

// SyncDir makes renames and creations in dir durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// SyncFS flushes the whole file system that holds dir (syncfs(2)): for a
// tree of files, such as an image's root filesystem, that must be on disk
// before a record declares it complete.
func SyncFS(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync file system of %s: %w", dir, err)
	}
	defer d.Close()
	if err := unix.Syncfs(int(d.Fd())); err != nil {
		return fmt.Errorf("sync file system of %s: %w", dir, err)
	}
	return nil
}
