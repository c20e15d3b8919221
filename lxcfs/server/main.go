package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"lodge/internal/helper"
	"lodge/internal/store"
	"lodge/lxcfs"
	"lodge/lxcfs/cgstats"
)

// ErrRestart is what ServeMain returns on SIGHUP: the server exits for its
// supervisor (or service manager) to start it again, from the binary now on
// disk, and the new server re-attaches the views of running containers.
// That is how an upgrade takes effect: `lodge lxcfs restart`.
var ErrRestart = errors.New("restart requested (SIGHUP)")

// ServeMain runs the server of the lodge root until SIGTERM or SIGINT
// (returns nil) or SIGHUP (returns ErrRestart): `lodge lxcfs serve`, and the
// supervised `lodge-lxcfs ROOT`.
func ServeMain(root string) error {
	// One server lives as long as the host's containers: keep its heap
	// small (renders are short-lived garbage) rather than let the Go
	// default double it after each storm of reads.
	debug.SetMemoryLimit(16 << 20)
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	self, err := os.Executable()
	if err != nil {
		return err
	}
	helperPath, err := helper.FindHelper(self)
	if err != nil {
		log.Warn("running containers cannot get new views after a restart", "err", err)
	}
	st, err := store.Open(root)
	if err != nil {
		return err
	}
	ctx, stop := context.WithCancelCause(context.Background())
	defer stop(nil)
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	go func() {
		if sig := <-signals; sig == syscall.SIGHUP {
			stop(ErrRestart)
		} else {
			stop(nil)
		}
	}()
	reattach := func(c *Container) error {
		if helperPath == "" {
			return fmt.Errorf("lodge-helper is missing")
		}
		return Reattach(helperPath, lxcfs.MountPoint(st), c)
	}
	err = Serve(ctx, root, reattach, log)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	if errors.Is(err, ErrOtherServer) {
		log.Info("not serving: another server runs", "state", lxcfs.StatePath(st))
		// The views are served: under systemd, end as a unit that started
		// and finished, not as one that failed and must be restarted.
		if err := notifyReady(); err != nil {
			log.Warn("systemd was not told", "err", err)
		}
		return nil
	}
	return err
}

// Reattach mounts the views of the server at mnt into container c: into
// its init's mount namespace and every other one its processes use (a
// systemd service with PrivateTmp= or ProtectSystem= has its own copy,
// holding the dead server's mounts too).
func Reattach(helperPath, mnt string, c *Container) error {
	if !c.Init.Alive() {
		return fmt.Errorf("container stopped")
	}
	var pairs [][2]string
	for _, m := range lxcfs.Mounts(c.Name) {
		pairs = append(pairs, [2]string{filepath.Join(mnt, m[0]), m[1]})
	}
	var errs []error
	for _, pid := range mountNamespaces(c) {
		if err := attachVia(helperPath, pid, pairs); err != nil && pid == c.Init.PID {
			errs = append(errs, err)
		} else if err != nil {
			errs = append(errs, fmt.Errorf("process %d's mount namespace: %w", pid, err))
		}
	}
	return errors.Join(errs...)
}

// mountNamespaces returns one process per distinct mount namespace in the
// container, init first.
func mountNamespaces(c *Container) []int {
	pids := []int{c.Init.PID}
	seen := map[string]bool{mountNS(c.Init.PID): true}
	tasks, _, _ := cgstats.ReadTasks(c.Cgroups, maxReattachTasks)
	for _, pid := range tasks {
		ns := mountNS(pid)
		if ns != "" && !seen[ns] {
			seen[ns] = true
			pids = append(pids, pid)
		}
	}
	return pids
}

// maxReattachTasks bounds the scan for mount namespaces.
const maxReattachTasks = 65536

func mountNS(pid int) string {
	ns, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/mnt")
	return ns
}

func attachVia(helperPath string, pid int, pairs [][2]string) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return err
	}
	pidfd := os.NewFile(uintptr(fd), "pidfd")
	defer pidfd.Close()
	return helper.Attach(helperPath, pidfd, pairs)
}
