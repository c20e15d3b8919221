package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// bench is one benchmark run: both runtimes prepared side by side in a
// private temp dir, and everything needed to undo that.
type bench struct {
	ctx      context.Context
	opts     options
	tmp      string
	id       string // random, names this run's cgroups
	run      *runner
	lodge    *lodgeRuntime
	lxc      *lxcRuntime
	runtimes []runtime
	checks   map[string]verification // by runtime name
	// The lodges of the storage backends (backends.go), by backend name.
	backends    map[string]*lodgeRuntime
	backendErrs map[string]error
	btrfs       btrfsSetup
	// debianCreates are the Debian group's create times, which the storage
	// group compares its backends with.
	debianCreates samples
	cleanups      []func() error // run last first
	replacer      *strings.Replacer
}

// verification is what setup confirmed about a runtime's first container.
type verification struct {
	UIDMap, GIDMap string
	Root           rootMount
	Procs          procs
	ExecFDs        string // fds open in a process run by exec: busybox ls /proc/self/fd
}

// newBench prepares both runtimes and one verified busybox container each.
// On error, b.cleanup must still run (b is never nil).
func newBench(ctx context.Context, opts options) (*bench, error) {
	b := &bench{ctx: ctx, opts: opts, id: randomHex(4), checks: map[string]verification{},
		backends: map[string]*lodgeRuntime{}, backendErrs: map[string]error{}}
	tmp, err := os.MkdirTemp("", "lodge-bench-")
	if err != nil {
		return b, err
	}
	b.tmp = tmp
	b.addCleanup(b.removeTemp)
	b.replacer = strings.NewReplacer(tmp, "$TMP")
	b.lodge, err = newLodge(opts.lodge, tmp, "lodge-bench-"+b.id)
	if err != nil {
		return b, err
	}
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LODGE_HOST_CONFIG=" + b.lodge.hostConfig}
	b.run, err = newRunner(env, filepath.Join(tmp, "stderr"), b.display)
	if err != nil {
		return b, err
	}
	b.addCleanup(func() error { b.run.close(); return nil })
	b.lodge.run = b.run
	// Cleanups run last first: containers go before their cgroup parents.
	b.addCleanup(func() error { return removeCgroups(b.lodge.cgroupName) })
	b.addCleanup(b.lodge.cleanup)
	if err := b.prepareLXC(); err != nil {
		return b, fmt.Errorf("prepare the LXC peer: %w", err)
	}
	b.runtimes = []runtime{b.lodge, b.lxc}
	pairs := []string{b.opts.lodge, "lodge"}
	for tool, path := range b.lxc.tools {
		pairs = append(pairs, path, tool)
	}
	b.replacer = strings.NewReplacer(append(pairs, tmp, "$TMP")...)
	for _, rt := range b.runtimes {
		if err := b.prepare(rt); err != nil {
			return b, err
		}
	}
	return b, nil
}

func (b *bench) prepareLXC() error {
	x, err := newLXC(b.tmp, "lodge-bench-"+b.id+"-lxc", b.run)
	if err != nil {
		return err
	}
	b.lxc = x
	b.addCleanup(x.undoIDs)
	b.addCleanup(func() error { return removeCgroups(x.cgroupDir) })
	b.addCleanup(x.cleanup)
	return nil
}

// prepare creates a runtime's first container, starts it, checks that it
// really runs unprivileged on an idmapped rootfs and that exec works, and
// stops it again.
func (b *bench) prepare(rt runtime) error {
	name := rt.Container(1)
	b.logf("%s: creating busybox container %s", rt.Name(), name)
	if err := rt.Create(name); err != nil {
		return fmt.Errorf("create the %s container: %w", rt.Name(), err)
	}
	if _, err := b.run.timed(rt.StartCmd(name)); err != nil {
		if rt == runtime(b.lxc) {
			err = fmt.Errorf("%w\n%s", err, b.lxc.startDebug(name))
		}
		return fmt.Errorf("%s cannot start a container here: %w", rt.Name(), err)
	}
	v, err := b.verify(rt, name)
	if stopErr := b.stopAndWait(rt, name, v.Procs); err == nil {
		err = stopErr
	}
	if err != nil {
		return err
	}
	b.checks[rt.Name()] = v
	return nil
}

func (b *bench) verify(rt runtime, name string) (verification, error) {
	var v verification
	var err error
	if v.Procs, err = checkRunning(rt, name); err != nil {
		return v, err
	}
	if _, err := b.run.timed(rt.ExecCmd(name, "true")); err != nil {
		return v, fmt.Errorf("%s cannot run a command in a container: %w", rt.Name(), err)
	}
	pid := v.Procs.Init
	if v.UIDMap, err = readIDMap(pid, "uid_map"); err != nil {
		return v, err
	}
	if v.GIDMap, err = readIDMap(pid, "gid_map"); err != nil {
		return v, err
	}
	if !strings.HasPrefix(v.UIDMap, "0 ") || strings.HasPrefix(v.UIDMap, "0 0 ") {
		return v, fmt.Errorf("%s container %s is not unprivileged: uid_map %q", rt.Name(), name, v.UIDMap)
	}
	if v.Root, err = readRootMount(pid); err != nil {
		return v, err
	}
	fds, err := b.run.output(rt.ExecCmd(name, "ls", "/proc/self/fd")...)
	if err != nil {
		return v, err
	}
	v.ExecFDs = strings.Join(strings.Fields(fds), " ")
	return v, nil
}

// stopAndWait stops a container forcibly (untimed) and waits for its
// monitor to exit.
func (b *bench) stopAndWait(rt runtime, name string, p procs) error {
	if _, err := b.run.timed(rt.StopCmd(name, true)); err != nil {
		return err
	}
	return b.waitStopped(rt, p)
}

// waitStopped waits until a stopped container's init and monitor are gone.
func (b *bench) waitStopped(rt runtime, p procs) error {
	for _, pid := range []int{p.Init, p.Monitor} {
		if err := waitGone(b.ctx, pid, 30*time.Second); err != nil {
			return fmt.Errorf("%s: after stop: %w", rt.Name(), err)
		}
	}
	return nil
}

// ensureStopped stops a container left running (by an earlier group that
// failed half-way).
func (b *bench) ensureStopped(rt runtime, name string) error {
	p, err := rt.Procs(name)
	if err != nil || p.Init == 0 {
		return err
	}
	return b.stopAndWait(rt, name, p)
}

// sleep pauses, untimed, unless interrupted.
func (b *bench) sleep(d time.Duration) {
	select {
	case <-b.ctx.Done():
	case <-time.After(d):
	}
}

func (b *bench) display(s string) string {
	if b.replacer == nil {
		return s
	}
	return b.replacer.Replace(s)
}

// commands displays argv lists one per line, as a user would type them.
func (b *bench) commands(argvs ...[]string) []string {
	var lines []string
	for _, argv := range argvs {
		lines = append(lines, b.run.display(argv))
	}
	return lines
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "lodge-bench: "+format+"\n", args...)
}

func (b *bench) addCleanup(fn func() error) { b.cleanups = append(b.cleanups, fn) }

// cleanup undoes setup, last step first, and reports what it could not undo.
func (b *bench) cleanup() error {
	var errs []error
	for i := len(b.cleanups) - 1; i >= 0; i-- {
		if err := b.cleanups[i](); err != nil {
			errs = append(errs, err)
		}
	}
	b.cleanups = nil
	return errors.Join(errs...)
}

// removeTemp deletes the temp dir, unless something is still mounted in it
// (then removing would reach into the mounted filesystem).
func (b *bench) removeTemp() error {
	if mounts := mountsUnder(b.tmp); len(mounts) > 0 {
		return fmt.Errorf("not removing %s: still mounted: %s", b.tmp, strings.Join(mounts, ", "))
	}
	return os.RemoveAll(b.tmp)
}

// removeCgroups removes this run's cgroup directories named name (lodge
// removes its own when the last container stops; LXC leaves the parent of
// lxc.cgroup.dir behind).
func removeCgroups(name string) error {
	var errs []error
	for _, dir := range cgroupDirsNamed(name) {
		if err := removeCgroupTree(dir); err != nil {
			errs = append(errs, fmt.Errorf("remove cgroup %s: %w", dir, err))
		}
	}
	return errors.Join(errs...)
}

func randomHex(n int) string {
	buf := make([]byte, n)
	rand.Read(buf)
	return hex.EncodeToString(buf)
}
