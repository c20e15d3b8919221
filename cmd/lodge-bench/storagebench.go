package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The storage group measures what lodge's storage backends are for, side
// by side with LXC: create from a warm cache on each backend, a
// copy-on-write clone of a ~300 MB and a ~3 GB Debian rootfs, a full copy,
// and a snapshot of a running container (how long lodge keeps it frozen).

func storageGroup() group {
	return group{Name: "storage", Title: "Storage: create, copy, snapshot", Run: runStorage}
}

// storageBackendNames are the backends whose create is measured.
var storageBackendNames = []string{"dir", "overlay", "btrfs"}

const (
	// The big rows add bigFillFiles files of bigFillMiB random bytes each
	// (incompressible, so no layer can shrink them) to the ~300 MB Debian
	// rootfs: ~3 GB in all.
	bigFillFiles = 27
	bigFillMiB   = 100
	bigFillDir   = "/var/lib/lodge-bench-fill"
	// bigMinFree is the free space the big rows need in $TMP's file system
	// (both sources at ~3 GB, and a full copy where a backend has no
	// copy-on-write), or they are not run.
	bigMinFree = 15 << 30
	// bigRounds: clones of the big rootfs per runtime.
	bigRounds = 3
	// The source containers.
	lodgeSource, lxcSource = "ssrc", "xsrc"
)

var targetFaster = &target{Text: "faster than LXC", MinRatio: 1}

// frozenLine is what `lodge copy` and `lodge snapshot create` print about
// a running container.
var frozenLine = regexp.MustCompile(`frozen for ([0-9]+(?:\.[0-9]+)?) ms`)

// storageRun is one run of the storage group: what it measured, what
// failed (each step that fails is reported, the others still run) and the
// source containers to delete at the end.
type storageRun struct {
	b    *bench
	res  *groupResult
	errs []error
	// lodgeSrc, lxcSrc: the source containers exist.
	lodgeSrc, lxcSrc bool
	// autoBackend is the backend of the benchmark's lodge (auto).
	autoBackend string
	// warm: the backends whose warm container exists.
	warm map[string]bool
	// lxcSnapshotRefused: lxc-snapshot refused to snapshot a running
	// container.
	lxcSnapshotRefused bool
}

func runStorage(b *bench) (*groupResult, error) {
	s := &storageRun{b: b, res: &groupResult{Method: storageMethod()}, warm: map[string]bool{}}
	defer s.removeSources()
	s.prepareSources()
	creates := s.measureCreates()
	cow := s.measureCopies("copy-on-write clone, ~300 MB", s.copySubjects("sclone", "xclone", "btrfs"), true, debianRounds(b))
	full := s.measureCopies("full copy, ~300 MB", s.copySubjects("sfull", "xfull", "dir"), false, debianRounds(b))
	frozen, snaps := s.measureSnapshots()
	var big samples
	if len(cow["lodge"]) == 0 {
		s.fail(errors.New("copy-on-write clone, ~3 GB: not measured, because the ~300 MB clone failed (writing 5 GB would be for nothing)"))
	} else if s.fillBig() {
		big = s.measureCopies("copy-on-write clone, ~3 GB", s.copySubjects("sbig", "xbig"), true, bigRounds)
	}
	s.res.Rows = append(creates,
		newRow("copy-on-write clone of a stopped container, ~300 MB"+s.onBackend(), latency, cow, targetFaster),
		backendRow("copy-on-write clone of a stopped container, ~300 MB", "btrfs", cow, targetFaster),
		newRow("copy-on-write clone of a stopped container, ~3 GB"+s.onBackend(), latency, big, targetFaster),
		newRow("full copy of a stopped container, ~300 MB"+s.onBackend(), latency, full, targetFaster2x),
		backendRow("full copy of a stopped container, ~300 MB", "dir", full, targetFaster2x),
		newRow("snapshot of a running container: time frozen", latency, frozen, nil),
		newRow(s.snapshotMetric(snaps), latency, snaps, nil),
	)
	return s.res, errors.Join(s.errs...)
}

// onBackend names the backend of the rows measured with the benchmark's
// own lodge.
func (s *storageRun) onBackend() string {
	if s.autoBackend == "" {
		return ""
	}
	return ", backend " + s.autoBackend + " (auto)"
}

// fail records a step that could not run; its row shows n/a and the group
// reports the error.
func (s *storageRun) fail(err error) {
	s.b.logf("storage: %v", err)
	s.errs = append(s.errs, err)
}

func (s *storageRun) note(format string, args ...any) {
	s.res.Notes = append(s.res.Notes, fmt.Sprintf(format, args...))
}

// lodgeStep explains a failure of a lodge command this lodge may not have
// yet (copy and snapshot came with the storage backends).
func lodgeStep(what string, err error) error {
	if err == nil {
		return nil
	}
	if strings.Contains(err.Error(), "unknown command") || strings.Contains(err.Error(), "unknown flag") {
		return fmt.Errorf("%s: the lodge under test lacks the command or flag (it must be built from a tree with the storage backends, copy and snapshot): %w", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// prepareSources creates the Debian containers the copy rows copy: one in
// the benchmark's lodge (the host's automatic backend) and one made by
// lxc-create, which also warms LXC's cache when the Debian group has not.
func (s *storageRun) prepareSources() {
	b := s.b
	b.logf("storage: creating the Debian source containers")
	if _, err := b.run.output(b.lodge.debianCreate(lodgeSource)...); err != nil {
		s.fail(fmt.Errorf("create lodge's source container: %w", err))
	} else {
		s.lodgeSrc = true
		s.autoBackend = b.lodge.storageBackend(lodgeSource)
		s.note("The benchmark's lodge (host config without `[storage]`, so `auto`) put its containers on the `%s` backend "+
			"(containers/%s/storage.json); the copy and snapshot rows measure that backend.", s.autoBackend, lodgeSource)
	}
	b.lxc.created = append(b.lxc.created, lxcSource)
	if _, err := b.run.output(b.lxcDebianCreate(lxcSource)...); err != nil {
		s.fail(fmt.Errorf("create LXC's source container: %w", err))
	} else {
		s.lxcSrc = true
	}
	plain, err := b.plainDebianRootfs()
	if err != nil {
		s.fail(err)
		return
	}
	s.note("Sizes (`du -sh`): lodge's Debian rootfs (as plain files on the dir backend) %s, LXC's %s.",
		duSize(b, plain), duSize(b, filepath.Join(b.lxc.path, lxcSource, "rootfs")))
}

func duSize(b *bench, path string) string {
	out, err := b.run.output("du", "-sh", path)
	if err != nil {
		return "unknown"
	}
	return strings.Fields(out + " ?")[0]
}

// removeSources deletes the source containers (the big ones hold ~3 GB
// each) as soon as the group is done.
func (s *storageRun) removeSources() {
	if s.lodgeSrc {
		if err := s.b.lodge.Destroy(lodgeSource); err != nil {
			s.b.logf("storage: %v", err)
		}
	}
	if s.lxcSrc {
		if err := s.b.lxc.Destroy(lxcSource); err != nil {
			s.b.logf("storage: %v", err)
		}
	}
}

// measureCreates times Debian creates from a warm cache on each backend,
// in turn, and compares each with lxc-create's times: the Debian group's
// when it ran (same run, same command), else measured here in the same
// turns.
func (s *storageRun) measureCreates() []row {
	b := s.b
	type subject struct {
		backend string
		lodge   *lodgeRuntime // nil for LXC
	}
	var subjects []subject
	lodgeTimes := map[string][]float64{}
	for _, name := range storageBackendNames {
		l, err := s.warmBackend(name)
		if err != nil {
			s.fail(err)
			continue
		}
		s.warm[name] = true
		subjects = append(subjects, subject{name, l})
		s.res.Commands = append(s.res.Commands, l.display(l.debianCreate(name+"N")))
	}
	lxcTimes := b.debianCreates["LXC"]
	if len(lxcTimes) > 0 {
		s.note("LXC's create times are the Debian section's (same run, same `lxc-create -t debian` command).")
	} else {
		subjects = append(subjects, subject{backend: "LXC"})
		s.res.Commands = append(s.res.Commands, b.commands(b.lxcDebianCreate("xcN"))...)
	}
	failed := map[string]bool{}
	i := 0
	err := inTurn(b, debianRounds(b), subjects, func(round int, sub subject) error {
		i++
		if sub.lodge == nil {
			name := fmt.Sprintf("xc%d", i)
			b.lxc.created = append(b.lxc.created, name)
			d, err := b.run.timed(b.lxcDebianCreate(name))
			if err != nil {
				return err
			}
			lxcTimes = append(lxcTimes, ms(d))
			return b.lxc.Destroy(name)
		}
		if failed[sub.backend] {
			return nil
		}
		name := fmt.Sprintf("%s%d", sub.backend, i)
		d, err := sub.lodge.run.timed(sub.lodge.debianCreate(name))
		if err == nil {
			lodgeTimes[sub.backend] = append(lodgeTimes[sub.backend], ms(d))
			err = sub.lodge.Destroy(name)
		}
		if err != nil {
			// One backend failing leaves the others' rounds alone.
			failed[sub.backend] = true
			delete(lodgeTimes, sub.backend)
			s.fail(fmt.Errorf("create on the %s backend: %w", sub.backend, err))
		}
		return nil
	})
	if err != nil {
		s.fail(fmt.Errorf("create from a warm cache: %w", err))
	}
	var rows []row
	for _, name := range storageBackendNames {
		rows = append(rows, row{Metric: "create from a warm cache, backend " + name, Kind: latency,
			Lodge: lodgeTimes[name], LXC: lxcTimes, Target: targetFaster10x})
	}
	return rows
}

// warmBackend sets up the lodge of backend name and creates one Debian
// container there, untimed, which stays until the end of the run: a
// backend may keep a copy of the image in its own storage on first use
// (btrfs: a subvolume), and overlay keeps its lower layer only while a
// container stands on it.
func (s *storageRun) warmBackend(name string) (*lodgeRuntime, error) {
	l, err := s.b.backendLodge(name)
	if err != nil {
		return nil, err
	}
	s.b.logf("storage: warming the %s backend", name)
	if _, err := l.run.output(l.debianCreate(name + "warm")...); err != nil {
		return nil, fmt.Errorf("create on the %s backend (untimed warm-up): %w", name, err)
	}
	if got := l.storageBackend(name + "warm"); got != name {
		return nil, fmt.Errorf("lodge with `[storage] backend = %q` made a container on backend %q", name, got)
	}
	if name == "btrfs" {
		s.res.Commands = append(s.res.Commands, s.b.btrfs.Commands...)
	}
	return l, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// copySubject is one side of a copy row: a lodge and its source
// container, or LXC (lodge nil).
type copySubject struct {
	key    string // the samples' key: "lodge", "LXC", "lodge on btrfs"
	lodge  *lodgeRuntime
	source string
	prefix string // of the copies' names
}

// copySubjects are the benchmark's lodge and LXC with their sources, and
// lodge on each of the backends named in also, with its warm container
// (~300 MB, stopped), when that backend is set up.
func (s *storageRun) copySubjects(lodgePrefix, lxcPrefix string, also ...string) []copySubject {
	subjects := []copySubject{
		{key: "lodge", lodge: s.b.lodge, source: lodgeSource, prefix: lodgePrefix},
		{key: "LXC", source: lxcSource, prefix: lxcPrefix},
	}
	for _, name := range also {
		if s.warm[name] {
			subjects = append(subjects, copySubject{key: "lodge on " + name, lodge: s.b.backends[name], source: name + "warm", prefix: name + lodgePrefix})
		}
	}
	return subjects
}

// backendRow compares lodge on backend name (from copySubjects' also)
// with LXC.
func backendRow(metric, name string, times samples, t *target) row {
	return row{Metric: metric + ", backend " + name, Kind: latency, Lodge: times["lodge on "+name], LXC: times["LXC"], Target: t}
}

// measureCopies times copies of the stopped source containers to new
// containers, in turn: `lodge copy SRC DST [--snapshot]` and `lxc-copy
// [-s -B overlayfs]`; each copy is deleted again, untimed. A side that
// fails is reported and drops out; the others go on.
func (s *storageRun) measureCopies(what string, subjects []copySubject, snapshot bool, rounds int) samples {
	b := s.b
	times := samples{}
	if !s.lodgeSrc || !s.lxcSrc {
		s.fail(fmt.Errorf("%s: not measured, a source container is missing", what))
		return times
	}
	copyCmd := func(sub copySubject, dst string) []string {
		if sub.lodge == nil {
			argv := b.lxc.tool("lxc-copy", "-n", sub.source, "-N", dst, "-P", b.lxc.path)
			if snapshot {
				argv = append(argv, "-s", "-B", "overlayfs")
			}
			return argv
		}
		argv := sub.lodge.argv("copy", sub.source, dst)
		if snapshot {
			argv = append(argv, "--snapshot")
		}
		return argv
	}
	for _, sub := range subjects {
		line := b.run.display(copyCmd(sub, sub.prefix+"N"))
		if sub.lodge != nil {
			line = sub.lodge.display(copyCmd(sub, sub.prefix+"N"))
		}
		s.res.Commands = append(s.res.Commands, line)
	}
	b.logf("storage: %s", what)
	failed := map[string]bool{}
	i := 0
	err := inTurn(b, rounds, subjects, func(round int, sub copySubject) error {
		i++
		if failed[sub.key] {
			return nil
		}
		dst := fmt.Sprintf("%s%d", sub.prefix, i)
		run, destroy := b.run, b.lxc.Destroy
		if sub.lodge != nil {
			run, destroy = sub.lodge.run, sub.lodge.Destroy
		} else {
			b.lxc.created = append(b.lxc.created, dst)
		}
		d, err := run.timed(copyCmd(sub, dst))
		if err == nil {
			times.addDuration(sub.key, d)
			err = destroy(dst)
		}
		if err != nil {
			failed[sub.key] = true
			delete(times, sub.key) // a half-measured side would compare unequal sample sets
			if sub.lodge != nil {
				err = lodgeStep("lodge copy", err)
			}
			s.fail(fmt.Errorf("%s (%s): %w", what, sub.key, err))
		}
		return nil
	})
	if err != nil {
		s.fail(fmt.Errorf("%s: %w", what, err))
	}
	return times
}

// snapshotRounds: snapshots of the running container per runtime.
func snapshotRounds(b *bench) int { return debianRounds(b) }

// measureSnapshots boots both source containers and snapshots them while
// they run: lodge's frozen time (from its own report) and both commands'
// wall times. lodge's container keeps running for fillBig.
func (s *storageRun) measureSnapshots() (frozen, wall samples) {
	frozen, wall = samples{}, samples{}
	if !s.lodgeSrc {
		s.fail(errors.New("snapshot of a running container: not measured, lodge's source container is missing"))
		return frozen, wall
	}
	b := s.b
	b.logf("storage: snapshots of a running container")
	if _, err := b.bootToRunning(b.lodge, lodgeSource); err != nil {
		s.fail(fmt.Errorf("snapshot of a running container: boot lodge's source: %w", err))
		return frozen, wall
	}
	create := func(snap string) []string { return b.lodge.argv("snapshot", "create", lodgeSource, snap) }
	s.res.Commands = append(s.res.Commands, b.commands(create("snapN"), b.lodge.argv("snapshot", "delete", lodgeSource, "snapN"))...)
	for i := range snapshotRounds(b) {
		snap := fmt.Sprintf("snap%d", i+1)
		d, printed, err := b.run.timedOutput(create(snap))
		if err == nil {
			var f float64
			if f, err = frozenMs(printed); err == nil {
				frozen.add("lodge", f)
				wall.addDuration("lodge", d)
				_, err = b.run.output(b.lodge.argv("snapshot", "delete", lodgeSource, snap)...)
			}
		}
		if err != nil {
			s.fail(lodgeStep("lodge snapshot create of a running container", err))
			frozen, wall = samples{}, samples{}
			break
		}
		b.sleep(b.opts.settle)
	}
	if s.lxcSrc {
		s.lxcSnapshots(wall)
	}
	return frozen, wall
}

// frozenMs reads the time a container was frozen from what lodge printed.
func frozenMs(printed string) (float64, error) {
	m := frozenLine.FindStringSubmatch(printed)
	if m == nil {
		return 0, fmt.Errorf("lodge printed no `frozen for N ms` line (it printed %q)", lastLines(strings.TrimSpace(printed), 3))
	}
	return strconv.ParseFloat(m[1], 64)
}

// lxcSnapshots boots LXC's source container unprivileged (its config is
// put back afterwards, so the copy rows copy the same container as
// before) and times lxc-snapshot of it while it runs.
func (s *storageRun) lxcSnapshots(wall samples) {
	b, x := s.b, s.b.lxc
	config := filepath.Join(x.path, lxcSource, "config")
	saved, err := os.ReadFile(config)
	if err != nil {
		s.fail(err)
		return
	}
	defer func() {
		if err := os.WriteFile(config, saved, 0o644); err != nil {
			s.fail(fmt.Errorf("restore LXC's source config: %w", err))
		}
	}()
	if err := x.makeUnprivileged(lxcSource); err != nil {
		s.fail(err)
		return
	}
	state, err := b.waitBooted(x, lxcSource)
	if err != nil {
		s.note("LXC's snapshot of a running container was not measured: its Debian container (made by lxc-create, unprivileged) did not boot here: %v", err)
		return
	}
	defer func() {
		if err := b.ensureStopped(x, lxcSource); err != nil {
			s.fail(err)
		}
	}()
	snapshot := x.tool("lxc-snapshot", "-n", lxcSource, "-P", x.path)
	s.res.Commands = append(s.res.Commands, b.commands(snapshot, x.tool("lxc-snapshot", "-n", lxcSource, "-P", x.path, "-d", "snapN"))...)
	for i := range snapshotRounds(b) {
		d, err := b.run.timed(snapshot)
		if err != nil {
			why := x.logErrors(snapshot, filepath.Join(b.tmp, "lxc-snapshot.log"))
			if strings.Contains(why, "is running") {
				s.lxcSnapshotRefused = true
			}
			s.note("lxc-snapshot of a running container fails here, so the LXC column is n/a: %v; LXC's log says: %s", err, why)
			wall["LXC"] = nil
			return
		}
		wall.addDuration("LXC", d)
		if _, err := b.run.output(x.tool("lxc-snapshot", "-n", lxcSource, "-P", x.path, "-d", fmt.Sprintf("snap%d", i))...); err != nil {
			s.fail(fmt.Errorf("delete LXC's snapshot: %w", err))
			return
		}
		b.sleep(b.opts.settle)
	}
	s.note("LXC's Debian container booted to `%s` before its snapshots; lxc-snapshot does not freeze it (a dir-backed "+
		"container's snapshot is a copy made while it runs, so it need not be consistent).", state)
}

// snapshotMetric names the wall-time row of the snapshot.
func (s *storageRun) snapshotMetric(wall samples) string {
	switch {
	case s.lxcSnapshotRefused:
		return "snapshot of a running container: command (LXC: lxc-snapshot refuses a running container)"
	case len(wall["LXC"]) == 0:
		return "snapshot of a running container: command (LXC: not measured, see notes)"
	}
	return "snapshot of a running container: command"
}

// waitBooted starts a container and waits until systemd inside has
// finished booting, running or degraded (LXC's own Debian rootfs need not
// boot cleanly unprivileged; a snapshot only needs it running); it
// returns systemd's state.
func (b *bench) waitBooted(rt runtime, name string) (string, error) {
	if _, err := b.run.timed(rt.StartCmd(name)); err != nil {
		return "", err
	}
	probe := rt.ExecCmd(name, "systemctl", "is-system-running", "--wait")
	began, last := time.Now(), ""
	for time.Since(began) < 60*time.Second && b.ctx.Err() == nil {
		out, _ := b.run.output(probe...)
		switch last = strings.TrimSpace(out); last {
		case "running", "degraded":
			return last, nil
		}
		b.sleep(50 * time.Millisecond)
	}
	return "", fmt.Errorf("systemd not booted after 60 s (last state %q)", last)
}

// fillBig writes ~2.7 GB of random files into both source containers:
// into lodge's from inside (exec, so they land where a user's writes land,
// e.g. overlay's upper layer), into LXC's rootfs from the host. It stops
// lodge's container afterwards. False when the big rows cannot run.
func (s *storageRun) fillBig() bool {
	b := s.b
	free, err := freeBytes(b.tmp)
	if err == nil && free < bigMinFree {
		err = fmt.Errorf("%.1f GiB free in %s's file system, the ~3 GB rows need %d GiB", float64(free)/(1<<30), b.display(b.tmp), bigMinFree>>30)
	}
	if err == nil && (!s.lodgeSrc || !s.lxcSrc) {
		err = errors.New("a source container is missing")
	}
	if err == nil {
		err = s.fillLodge()
	}
	if err == nil {
		err = s.fillLXC()
	}
	if stopErr := b.ensureStopped(b.lodge, lodgeSource); stopErr != nil && err == nil {
		err = stopErr
	}
	if err != nil {
		s.fail(fmt.Errorf("copy-on-write clone, ~3 GB: not measured: %w", err))
		return false
	}
	s.note("For the ~3 GB rows both sources got %d files of %d MiB from /dev/urandom in %s (f0 to f%d, one command each); sizes after (`du -sh`): lodge's source container's directory %s (on overlay without the shared image layer), LXC's rootfs %s.",
		bigFillFiles, bigFillMiB, bigFillDir, bigFillFiles-1, duSize(b, filepath.Join(b.lodge.root, "containers", lodgeSource)), duSize(b, filepath.Join(b.lxc.path, lxcSource, "rootfs")))
	return true
}

// fillCommand writes file i of the fill.
func fillCommand(root string, i int) string {
	return fmt.Sprintf("mkdir -p %[1]s%[2]s && head -c %[3]dM /dev/urandom > %[1]s%[2]s/f%[4]d", root, bigFillDir, bigFillMiB, i)
}

func (s *storageRun) fillLodge() error {
	b := s.b
	b.logf("storage: writing %d x %d MiB into lodge's source container", bigFillFiles, bigFillMiB)
	if p, _ := b.lodge.Procs(lodgeSource); p.Init == 0 {
		return errors.New("lodge's source container is not running (its boot failed above)")
	}
	for i := range bigFillFiles {
		argv := b.lodge.ExecCmd(lodgeSource, "sh", "-c", fillCommand("", i))
		if i == 0 {
			s.res.Commands = append(s.res.Commands, b.commands(argv)...)
		}
		if _, err := b.run.output(argv...); err != nil {
			return err
		}
	}
	return nil
}

func (s *storageRun) fillLXC() error {
	b := s.b
	b.logf("storage: writing %d x %d MiB into LXC's source rootfs", bigFillFiles, bigFillMiB)
	rootfs := filepath.Join(b.lxc.path, lxcSource, "rootfs")
	for i := range bigFillFiles {
		argv := []string{"sh", "-c", fillCommand(rootfs, i)}
		if i == 0 {
			s.res.Commands = append(s.res.Commands, b.commands(argv)...)
		}
		if _, err := b.run.output(argv...); err != nil {
			return err
		}
	}
	return nil
}

func storageMethod() []string {
	return []string{
		"**Create from a warm cache, per backend.** One lodge per backend, each with its own root and a host config that adds " +
			"`[storage] backend = \"dir\"`, `\"overlay\"` or `\"btrfs\"` to the benchmark's (passed in `LODGE_HOST_CONFIG`); " +
			"btrfs's root lives on a btrfs file system made by the benchmark in a sparse file of $TMP and mounted through a " +
			"loop device (unmounted and detached at the end). Each backend first creates one Debian container, untimed, that " +
			"stays: the image is then in the backend's own storage where it keeps one. Then each round, backends in turn: " +
			"create a container (**timed**) and delete it (untimed). Compared with `lxc-create -t debian` from its warm cache.",
		"**Copies.** Sources: a Debian container made by the benchmark's lodge (the host's automatic backend, named in the " +
			"notes) and one made by `lxc-create -t debian`, both stopped. Each round, per runtime: copy the source to a new " +
			"container (**timed**), delete the copy (untimed). The copy-on-write clone is `lodge copy SRC DST --snapshot` " +
			"against `lxc-copy -s -B overlayfs`; the full copy `lodge copy SRC DST` against `lxc-copy` (which rsyncs). " +
			"On overlay the image's layer is read-only and shared, so even a full copy copies only the container's own " +
			"upper layer; the rows marked *backend dir* copy the whole tree (lodge on the dir backend, its warm container " +
			"as the source), the rows marked *backend btrfs* clone btrfs's warm container; both in the same turns, " +
			"against the same LXC samples. " +
			fmt.Sprintf("For the ~3 GB rows both sources first get %d files of %d MiB of random data (lodge's from inside, "+
				"through exec, where a user's writes go; LXC's in its rootfs), %d rounds; they run only with %d GiB free "+
				"and the sources are deleted right after.", bigFillFiles, bigFillMiB, bigRounds, bigMinFree>>30),
		"**Snapshot of a running container.** lodge's source boots to `running`, then each round `lodge snapshot create` " +
			"(**timed**) and `lodge snapshot delete` (untimed). *Time frozen* is what lodge reports (`frozen for N ms`): how long " +
			"the container's processes were stopped by the cgroup freezer for the cut. LXC does not freeze a container for " +
			"`lxc-snapshot`, so that row has no LXC column; the *command* row compares the wall time of `lodge snapshot " +
			"create` with `lxc-snapshot` of LXC's running source (booted unprivileged for that row only).",
	}
}
