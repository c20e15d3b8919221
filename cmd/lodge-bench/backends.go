package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Each storage backend gets a lodge of its own: a root and a host config
// with `[storage] backend = NAME`, made on first use and deleted at the end
// of the run. btrfs's root lives on a btrfs filesystem in a sparse file of
// $TMP, mounted through a loop device of its own.

// btrfsImageSize is the size of the sparse btrfs file: room for the
// Debian image, a warm container and one being created (about 300 MiB
// each); only what is written takes space on the host.
const btrfsImageSize = 4 << 30

// backendLodge returns the lodge whose containers get storage backend
// name, setting it up on first use; a setup that failed fails again with
// the same error rather than being retried.
func (b *bench) backendLodge(name string) (*lodgeRuntime, error) {
	if l, ok := b.backends[name]; ok {
		return l, nil
	}
	if err, ok := b.backendErrs[name]; ok {
		return nil, err
	}
	l, err := b.newBackendLodge(name)
	if err != nil {
		err = fmt.Errorf("set up lodge with storage backend %q: %w", name, err)
		b.backendErrs[name] = err
		return nil, err
	}
	b.backends[name] = l
	return l, nil
}

func (b *bench) newBackendLodge(name string) (*lodgeRuntime, error) {
	parent := b.tmp
	if name == "btrfs" {
		mnt, err := b.mountBtrfs(btrfsImageSize)
		if err != nil {
			return nil, err
		}
		parent = mnt
	}
	l, err := b.lodge.onBackend(name, filepath.Join(parent, "lodge-"+name), filepath.Join(b.tmp, "lodge-"+name+".toml"))
	if err != nil {
		return nil, err
	}
	// Registered after the mount's undo, so it runs before it: the
	// containers go before the filesystem they live on.
	b.addCleanup(l.cleanup)
	return l, nil
}

// btrfsSetup is how the btrfs filesystem was made, for the report.
type btrfsSetup struct {
	Commands []string
}

// mountBtrfs makes a sparse file of size bytes in $TMP, formats it btrfs,
// attaches it to a loop device and mounts it on $TMP/btrfs. The run's
// clean-up unmounts it and detaches the loop device; removeTemp deletes the
// file.
func (b *bench) mountBtrfs(size int64) (string, error) {
	img, mnt := filepath.Join(b.tmp, "btrfs.img"), filepath.Join(b.tmp, "btrfs")
	f, err := os.Create(img)
	if err != nil {
		return "", err
	}
	err = f.Truncate(size)
	if err := errors.Join(err, f.Close()); err != nil {
		return "", err
	}
	steps := [][]string{{"truncate", "-s", fmt.Sprint(size), img}, {"mkfs.btrfs", "-q", img}}
	if _, err := b.run.output(steps[1]...); err != nil {
		return "", fmt.Errorf("%w (mkfs.btrfs comes with btrfs-progs: make deps installs it)", err)
	}
	losetup := []string{"losetup", "--find", "--show", img}
	out, err := b.run.output(losetup...)
	if err != nil {
		return "", fmt.Errorf("no loop device for the btrfs file: %w", err)
	}
	dev := strings.TrimSpace(out)
	b.addCleanup(func() error {
		if _, err := b.run.output("losetup", "--detach", dev); err != nil {
			return fmt.Errorf("detach the btrfs loop device: %w", err)
		}
		return nil
	})
	if err := os.Mkdir(mnt, 0o711); err != nil {
		return "", err
	}
	if err := unix.Mount(dev, mnt, "btrfs", 0, ""); err != nil {
		return "", fmt.Errorf("mount %s (btrfs) on %s: %w", dev, mnt, err)
	}
	b.addCleanup(func() error {
		if err := unix.Unmount(mnt, 0); err != nil {
			return fmt.Errorf("unmount the btrfs file system %s: %w", b.display(mnt), err)
		}
		return nil
	})
	steps = append(steps, losetup, []string{"mount", "-t", "btrfs", "/dev/loopN", mnt})
	b.btrfs.Commands = b.commands(steps...)
	return mnt, nil
}

// freeBytes is the space left for an unprivileged user on dir's
// filesystem.
func freeBytes(dir string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// storageBackend reads the backend lodge recorded for container name
// (containers/NAME/storage.json).
func (l *lodgeRuntime) storageBackend(name string) string {
	data, err := os.ReadFile(filepath.Join(l.root, "containers", name, "storage.json"))
	if err != nil {
		return "unknown (no storage.json)"
	}
	var rec struct {
		Backend string `json:"backend"`
	}
	if err := json.Unmarshal(data, &rec); err != nil || rec.Backend == "" {
		return "unknown"
	}
	return rec.Backend
}
