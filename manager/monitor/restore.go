package monitor

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"lodge/config"
	"lodge/internal/cgroup"
	"lodge/internal/revert"
	"lodge/internal/store"
	"lodge/lxcfs"
	"lodge/migrate"
	"lodge/rootfs"
	"lodge/storage"
	"lodge/storage/overlay"
)

// A restore is a boot whose processes come from a checkpoint (CRIU's
// images, migrate.Restore) instead of a new init: `lodge-monitor __monitor
// ROOT NAME restore DIR`. The monitor makes what CRIU does not: the
// container's cgroups (same paths, limits, delegation), its root as the
// container sees it (an idmapped bind), the sources of the external mounts
// (host devices, /dev/null, the views, the boot id file, a new console),
// and then restores the tree as its own child (restore-sibling), so that
// from there on it watches the restored init like one it started.
// docs/checkpoint.md has the recipe and what each step fixed.

// restoreArg selects a restore in Main's arguments; frozenArg after its
// directory holds the restored tree frozen (`restore DIR frozen`).
const (
	restoreArg = "restore"
	frozenArg  = "frozen"
)

// runRestore is run for a restore: the monitor's set-up, the restore, then
// watching the container as after a boot.
func (m *Monitor) runRestore(dir string, hold bool) int {
	return m.runWith(func() (*boot, error) { return m.restore(dir, hold) }, "restore from "+dir)
}

// restore brings the container back from checkpoint dir. On failure it
// leaves nothing behind (CRIU kills what it restored) and the checkpoint
// as it was. With hold, the restored tree is frozen (its cgroup's freezer)
// before its tasks run again, and stays so until someone thaws it (a
// migration's commit): it never runs beside its source's copy.
func (m *Monitor) restore(dir string, hold bool) (*boot, error) {
	cfg, err := config.Load(m.store.ConfigPath(m.name))
	if err != nil {
		return nil, err
	}
	rec, err := migrate.ReadRecord(dir)
	if err != nil {
		return nil, err
	}
	if err := m.restorable(rec); err != nil {
		return nil, err
	}
	criu, err := migrate.FindCRIU(m.host.CRIU.Path)
	if err != nil {
		return nil, err
	}
	r := revert.New()
	defer r.Fail()
	group, err := m.makeCgroup(cfg)
	if err != nil {
		return nil, err
	}
	r.Add(func() { destroyCgroup(group) })
	if err := group.MakeSubgroups(rec.Subgroups, int(m.ids.HostID), int(m.ids.HostID)); err != nil {
		return nil, err
	}
	staging := RestoreStaging(m.store, m.name)
	mounts, err := m.restoreSources(staging, rec)
	defer unmountStaging(staging)
	if err != nil {
		return nil, err
	}
	if err := openImages(dir, int(m.ids.HostID)); err != nil {
		return nil, err
	}
	nics, err := m.attachNICsForRestore(cfg)
	if err != nil {
		return nil, err
	}
	r.Add(func() { m.detachNICs(false) }) // the manager releases the addresses
	master, slave, err := openConsolePty(int(m.ids.HostID))
	if err != nil {
		return nil, err
	}
	defer slave.Close()
	mounts = append(mounts, migrate.ExternalMount{Key: "lodge:" + rootfs.ConsoleTarget, Source: slave.Name()})
	// The uptime at the dump: the views' /proc/uptime goes on from there,
	// as its time namespace's clocks do.
	b := &boot{cfg: cfg, group: group, started: time.Now().UTC(), uptimeBase: rec.Uptime, rootfsMode: "idmapped", exited: make(chan struct{})}
	if b.stopSignal, err = m.stopSignal(cfg); err != nil {
		master.Close()
		return nil, err
	}
	var held *cgroup.Group
	if hold {
		held = group
	}
	pid, err := migrate.Restore(criu, migrate.RestoreRequest{
		Hold:      held,
		ImagesDir: dir, LogFile: "restore.log", Root: filepath.Join(staging, "root"),
		Mounts: mounts, Console: slave, ConsoleTTY: rec.Console, Externals: nics,
		CgroupRoots: group.CRIURoots(),
		// Recorded before the tasks run again: the views server answers
		// for the container from its first read.
		Restored: func(pid int) error {
			var err error
			if b.init, err = store.ProcessOf(pid); err == nil {
				err = m.writeState(b, store.Running)
			}
			return err
		},
	})
	if err != nil {
		master.Close()
		m.store.RemoveState(m.name)
		return nil, err
	}
	if b.proc, err = os.FindProcess(pid); err != nil {
		master.Close()
		return nil, err
	}
	b.console = newConsoleRelay(master, m.consoleLogPath())
	// The NICs announce themselves from the namespace, so that the
	// bridges send the container's frames here. A held tree's network is
	// still locked (frozen tasks, and the lock drops what comes in until
	// the commit): its peers' frames are dropped here rather than reach
	// the source's namespace, which answers them with resets once CRIU
	// has killed the tree there. It announces itself again when it is let
	// go (manager's releaseHeld).
	m.announceNICs(pid)
	r.Success()
	go b.reap()
	m.setCurrent(b)
	m.log.Info("container restored", "init", pid, "checkpoint", dir, "held", hold)
	return b, nil
}

// restorable refuses what this version cannot restore, before anything is
// made: another id range (uid_map in the images is absolute).
func (m *Monitor) restorable(rec migrate.Record) error {
	if rec.HostID != m.ids.HostID || rec.IDCount != m.ids.Size {
		return fmt.Errorf("the checkpoint was made with ids %d-%d, and %s now has %d-%d: restore needs the same range",
			rec.HostID, rec.HostID+rec.IDCount-1, m.name, m.ids.HostID, m.ids.HostID+m.ids.Size-1)
	}
	return nil
}

// restoreSources makes, under staging, the root CRIU restores into (the
// rootfs, idmapped) and the views' sources, and writes the boot id file;
// it returns the external mounts but the console.
func (m *Monitor) restoreSources(staging string, rec migrate.Record) ([]migrate.ExternalMount, error) {
	if err := os.MkdirAll(filepath.Join(staging, "root"), 0o711); err != nil {
		return nil, err
	}
	held, err := holdUserns(m.ids.HostID, m.ids.Size, filepath.Join(staging, "l"))
	if err != nil {
		return nil, err
	}
	defer held.close()
	tree, err := m.restoreRoot(held)
	if err != nil {
		return nil, err
	}
	defer tree.Close()
	if err := unix.MoveMount(int(tree.Fd()), "", unix.AT_FDCWD, filepath.Join(staging, "root"), unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return nil, fmt.Errorf("attach the restore root: %w", err)
	}
	if err := rootfs.WriteBootID(m.store.BootIDPath(m.name), rec.BootID, int(m.ids.HostID)); err != nil {
		return nil, err
	}
	views := map[string]string{}
	for _, v := range lxcfs.Mounts(m.name) {
		views[v[1]] = v[0]
	}
	var out []migrate.ExternalMount
	for i, target := range rec.Mounts {
		src := ""
		switch {
		case target == rootfs.ConsoleTarget:
			continue
		case target == rootfs.BootIDTarget:
			src = m.store.BootIDPath(m.name)
		case views[target] != "":
			// CRIU opens the sources from the container's user namespace,
			// which cannot traverse the views server's directory: a clone
			// of the view is attached in the staging directory instead.
			src = filepath.Join(staging, "v"+strconv.Itoa(i))
			if err := cloneView(filepath.Join("/", lxcfs.MountPoint(m.store), views[target]), src); err != nil {
				return nil, err
			}
		default:
			src = externalSource(target)
		}
		out = append(out, migrate.ExternalMount{Key: "lodge:" + target, Source: src})
	}
	return out, nil
}

// externalSource is the host path a lodge bind comes from: the device
// node of the same name, or /dev/null for a masked /proc file.
func externalSource(target string) string {
	for _, e := range rootfs.ExternalMounts("/proc") {
		if e.Target == target && e.Source != "" {
			return e.Source
		}
	}
	return "/dev/null"
}

// cloneView attaches a clone of the view at path src (a file or a
// directory) at dst.
func cloneView(src, dst string) error {
	fi, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("view %s: %w", src, err)
	}
	if fi.IsDir() {
		err = os.Mkdir(dst, 0o555)
	} else {
		err = os.WriteFile(dst, nil, 0o444)
	}
	if err != nil {
		return err
	}
	fd, err := unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return fmt.Errorf("clone view %s: %w", src, err)
	}
	defer unix.Close(fd)
	return unix.MoveMount(fd, "", unix.AT_FDCWD, dst, unix.MOVE_MOUNT_F_EMPTY_PATH)
}

// unmountStaging detaches what restoreSources attached and removes the
// directory (never through a mount: RemoveStaging): the restored tree has
// its own copies of these mounts.
func unmountStaging(staging string) {
	RemoveStaging(staging)
}

// heldUserns is a user namespace with the container's id map, held by a
// child process (lodge-monitor __hold) in it, with a mount namespace of its
// own, as the container's root: the idmap of restore mounts needs the
// namespace, and an overlay root is mounted by the child (mountOverlay).
type heldUserns struct {
	ns     *os.File // its /proc/PID/ns/user
	sock   *os.File // to the child
	cmd    *exec.Cmd
	layers string // a shared mount where overlay layers are attached for the child
}

// holdUserns starts the child. The layers' directory is made a shared
// mount before the child's mount namespace is cloned, so that layers
// attached below it later reach the child (as a slave of it).
func holdUserns(hostID, count uint32, layers string) (*heldUserns, error) {
	// Traversable: the child, the container's root, opens the layers by
	// path (the layers' own roots are idmapped).
	if err := os.MkdirAll(layers, 0o711); err != nil {
		return nil, err
	}
	if err := unix.Mount(layers, layers, "", unix.MS_BIND, ""); err != nil {
		return nil, fmt.Errorf("restore layers: %w", err)
	}
	if err := unix.Mount("", layers, "", unix.MS_SHARED, ""); err != nil {
		unix.Unmount(layers, unix.MNT_DETACH)
		return nil, fmt.Errorf("restore layers: %w", err)
	}
	parent, child, err := socketpair()
	if err != nil {
		return nil, err
	}
	defer child.Close()
	cmd := exec.Command("/proc/self/exe", holdArg)
	cmd.ExtraFiles = []*os.File{child}
	cmd.SysProcAttr = namespaceAttrs(hostID, count)
	cmd.SysProcAttr.Cloneflags = syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS
	if err := cmd.Start(); err != nil {
		parent.Close()
		return nil, fmt.Errorf("user namespace for the restore: %w", err)
	}
	h := &heldUserns{sock: parent, cmd: cmd, layers: layers}
	if h.ns, err = os.Open("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/ns/user"); err != nil {
		h.close()
		return nil, err
	}
	return h, nil
}

// close ends the child (its socket closes) and waits for it.
func (h *heldUserns) close() {
	if h.ns != nil {
		h.ns.Close()
	}
	h.sock.Close()
	h.cmd.Wait()
}

// mountOverlay has the child mount an overlay from the n idmapped layers
// attached below dir (lowers, then the tree holding upper and work) and
// returns the detached mount. Made by the container's root, the overlay
// writes its upper layer with ids the idmapped layers accept; made by host
// root it comes up read-only (host uid 0 is not in their range). An
// overlay takes no detached layer from another mount namespace, so the
// layers are attached where the child sees them.
func (h *heldUserns) mountOverlay(n int) (*os.File, error) {
	if err := send(h.sock, message{Type: "layers", Path: h.layers, Count: n}); err != nil {
		return nil, err
	}
	msg, files, err := receive(h.sock)
	if err != nil {
		return nil, fmt.Errorf("overlay root for the restore: %w", err)
	}
	if msg.Type == "error" || len(files) != 1 {
		closeAll(files)
		return nil, fmt.Errorf("overlay root for the restore: %s", msg.Error)
	}
	return files[0], nil
}

// holdArg is the lodge-monitor mode of holdUserns's child.
const holdArg = "__hold"

// Hold is holdUserns's child (descriptor 3: its socket): it mounts the
// overlays asked for and exits when the socket closes.
func Hold() {
	sock := os.NewFile(3, "hold")
	for {
		msg, files, err := receive(sock)
		closeAll(files)
		if err != nil {
			os.Exit(0)
		}
		d, err := os.OpenFile(msg.Path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		var mnt *os.File
		if err == nil {
			mnt, err = overlayRoot(d, msg.Count) // as the container's first process at a boot
		}
		if err != nil {
			send(sock, message{Type: "error", Error: err.Error()})
			continue
		}
		send(sock, message{Type: "tree"}, mnt)
		mnt.Close()
	}
}

// restoreRoot is the container's root as it sees it, a detached mount for
// CRIU's --root: an idmapped clone of its rootfs, or for overlay storage an
// overlay of idmapped layers, mounted by the held child as the container
// mounts it at a boot.
func (m *Monitor) restoreRoot(held *heldUserns) (*os.File, error) {
	ovl, err := m.usesOverlay()
	if err != nil {
		return nil, err
	}
	if !ovl {
		return rootfs.OpenTree(m.store.RootfsPath(m.name), held.ns)
	}
	o, err := storage.NewOverlay(m.store.Root)
	if err != nil {
		return nil, err
	}
	ov := o.(storage.Overlay)
	path := m.store.RootfsPath(m.name)
	t, err := storage.ReadTree(path)
	if err != nil {
		return nil, err
	}
	upper, err := storage.OpenUpperDir(path)
	if err != nil {
		return nil, err
	}
	defer upper.Close()
	dirs := append(ov.Lowers(t), upper.Dir)
	for i, dir := range dirs {
		l, err := overlay.IdmapLayer(dir, held.ns, i < len(dirs)-1)
		if err != nil {
			return nil, err
		}
		target := filepath.Join(held.layers, strconv.Itoa(i))
		err = os.Mkdir(target, 0o700)
		if err == nil {
			err = unix.MoveMount(int(l.Fd()), "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH)
		}
		l.Close()
		if err != nil {
			return nil, fmt.Errorf("attach overlay layer %d for the restore: %w", i, err)
		}
	}
	return held.mountOverlay(len(dirs))
}

// openConsolePty opens a new pty on the host's devpts for the restored
// console, its slave owned by the container's root (CRIU sets the slave's
// owner from inside the container's user namespace).
func openConsolePty(owner int) (master, slave *os.File, err error) {
	// Non-blocking, so that os.File polls it: the console relay stops
	// its reader with a deadline when the monitor goes idle.
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("console pty: %w", err)
	}
	m := os.NewFile(uintptr(fd), "console-master")
	fail := func(err error) (*os.File, *os.File, error) {
		m.Close()
		return nil, nil, fmt.Errorf("console pty: %w", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		return fail(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		return fail(err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fail(err)
	}
	// As a boot makes it (rootfs.ownConsole): the container's root's, 0600.
	if err := s.Chown(owner, owner); err != nil {
		s.Close()
		return fail(err)
	}
	if err := s.Chmod(0o600); err != nil {
		s.Close()
		return fail(err)
	}
	return m, s, nil
}

// openImages makes the checkpoint's images readable by the restored
// tasks, which open some of them themselves (tty-info, timens) from the
// container's user namespace, at moments when their credentials are
// neither host root's nor yet fully the container root's: owned by the
// container's root and readable by all. Only through the images
// directory's descriptor: the directory lies in the container's private
// directory (0700), which no other user can traverse.
func openImages(dir string, uid int) error {
	return filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if d.IsDir() {
			mode = 0o755
		}
		if err := os.Lchown(p, uid, uid); err != nil {
			return err
		}
		return os.Chmod(p, mode)
	})
}
