package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/checkpoint-restore/go-criu/v7/stats"

	"lodge/migrate"
	"lodge/storage"
)

// The checkpoint group checkpoints running containers with CRIU, stopping
// them (`lodge checkpoint --stop`, `lxc-checkpoint -s`), and restores them
// (`lodge restore`, `lxc-checkpoint -r`), both runtimes with the same CRIU:
// an idle busybox, Debian with systemd, and busybox holding 64 MiB, 256 MiB
// and 1 GiB of touched memory.

func checkpointGroup() group {
	return group{Name: "checkpoint", Title: "Checkpoint and restore", Run: runCheckpoint}
}

const (
	// memhogPath is where the memory holder goes in the containers.
	memhogPath = "/usr/local/bin/lodge-memhog"
	// memhogReady is the file it writes its pid to once its memory is
	// touched.
	memhogReady = "/tmp/memhog.pid"
	// basePATH is the benchmark's PATH (runner env); LXC's checkpoint
	// commands get the CRIU directory before it.
	basePATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// ckptCase is one kind of container checkpointed and restored.
type ckptCase struct {
	label  string // in the rows
	mib    int    // memory memhog holds, touched; 0 for none
	debian bool
	rounds int
	warm   int // untimed rounds first
}

// ckptSubject is one runtime's container for a case and how to checkpoint
// and restore it.
type ckptSubject struct {
	who           string // "lodge" or "LXC"
	rt            runtime
	run           *runner // runs every command for this container
	display       func([]string) string
	name          string
	checkpointCmd []string
	restoreCmd    []string
	imageDir      func() (string, error) // the last checkpoint's images
	beforeRestore func(dir string) error // untimed, between the two
	removeImages  func() error
	err           error // could not be prepared: its rows say why
}

// ckptStage says which step of a round failed.
type ckptStage string

const (
	stagePrepare    ckptStage = "prepare"
	stageCheckpoint ckptStage = "checkpoint"
	stageRestore    ckptStage = "restore"
	stageVerify     ckptStage = "check after restore"
)

type stageError struct {
	stage ckptStage
	err   error
	criu  string // what CRIU's log says, if read
}

func (e *stageError) Error() string {
	if e.criu != "" {
		return fmt.Sprintf("%s: %v; CRIU's log: %s", e.stage, e.err, e.criu)
	}
	return fmt.Sprintf("%s: %v", e.stage, e.err)
}
func (e *stageError) Unwrap() error { return e.err }

func failedAt(stage ckptStage, err error) error {
	if err == nil {
		return nil
	}
	return &stageError{stage: stage, err: err}
}

// ckptMeasure is what the rounds of one case measured.
type ckptMeasure struct {
	dump, restore, size samples
	frozen, memdump     samples // CRIU's dump statistics, ms
	memwrite            samples
	restoreTime         samples // CRIU's restore statistics, ms
	lodgeDumpCall       []float64
	dumpPhases          map[string][]float64 // lodge's dump.log
	restorePhases       map[string][]float64 // lodge's restore.log
	dumpSpan            []float64
	restoreSpan         []float64
	failed              map[string]error
	tarred              map[string]int // tmpfs mounts CRIU archived with tar
}

func newCkptMeasure() *ckptMeasure {
	return &ckptMeasure{dump: samples{}, restore: samples{}, size: samples{}, frozen: samples{}, memdump: samples{}, memwrite: samples{},
		restoreTime: samples{}, dumpPhases: map[string][]float64{}, restorePhases: map[string][]float64{}, failed: map[string]error{}, tarred: map[string]int{}}
}

type ckptBench struct {
	b      *bench
	res    *groupResult
	criu   *migrate.CRIU
	lxcRun *runner
	notes  []string
}

func runCheckpoint(b *bench) (*groupResult, error) {
	res := &groupResult{}
	began := time.Now()
	criu, err := migrate.FindCRIU("")
	if err != nil {
		return res, fmt.Errorf("%w (make deps installs CRIU)", err)
	}
	check := time.Since(began)
	if _, err := os.Stat(b.opts.memhog); err != nil {
		return res, fmt.Errorf("memhog: %w (make bench builds it)", err)
	}
	ck := &ckptBench{b: b, res: res, criu: criu}
	ck.notes = append(ck.notes, fmt.Sprintf("lodge's check of its CRIU (`migrate.FindCRIU`: a VERSION request to a `criu swrk`, "+
		"cached only for the life of a process, so `lodge checkpoint` pays it and the monitor again at restore) took %.0f ms in this benchmark's process.",
		float64(check.Microseconds())/1000))
	criuDir, err := b.criuOnPath(ck, criu)
	if err != nil {
		return res, err
	}
	res.Method = ck.method(criuDir)
	res.Commands = append(res.Commands, b.run.display([]string{"ln", "-s", criu.Path, filepath.Join(criuDir, "criu")}))

	cases := []ckptCase{
		{label: "idle busybox", rounds: b.opts.ckptRounds, warm: 1},
		{label: "Debian with systemd", debian: true, rounds: min(3, b.opts.ckptRounds)},
		{label: "busybox, 64 MiB touched", mib: 64, rounds: b.opts.ckptRounds},
		{label: "busybox, 256 MiB touched", mib: 256, rounds: b.opts.ckptRounds},
		{label: "busybox, 1 GiB touched", mib: 1024, rounds: b.opts.ckptBigRounds},
	}
	busybox := []*ckptSubject{ck.lodgeBusybox("ck1"), ck.lxcSubject("xck1", false)}
	var debian []*ckptSubject
	for _, c := range cases {
		if b.ctx.Err() != nil {
			break
		}
		subjects := busybox
		if c.debian {
			if debian == nil {
				debian = []*ckptSubject{ck.lodgeDebian("ckdeb"), ck.lxcSubject("xckdeb", true)}
			}
			subjects = debian
		}
		b.logf("checkpoint: %s", c.label)
		m := ck.measureCase(c, subjects)
		ck.rows(c, subjects, m)
	}
	for _, s := range append(busybox, debian...) {
		ck.ensureStopped(s)
	}
	res.Notes = append(res.Notes, ck.notes...)
	return res, b.ctx.Err()
}

// measureCase runs the case's rounds, the runtimes in turn. A runtime whose
// round fails is not measured further in this case; its rows say why.
func (ck *ckptBench) measureCase(c ckptCase, subjects []*ckptSubject) *ckptMeasure {
	m := newCkptMeasure()
	for _, s := range subjects {
		if s.err != nil {
			m.failed[s.who] = s.err
		}
	}
	ck.b.sleep(ck.b.opts.settle)
	inTurn(ck.b, c.warm+c.rounds, subjects, func(round int, s *ckptSubject) error {
		if m.failed[s.who] != nil {
			return nil
		}
		if err := ck.round(s, c, round >= c.warm, m); err != nil {
			m.failed[s.who] = err
			ck.b.logf("checkpoint: %s, %s: %v", c.label, s.who, err)
			ck.ensureStopped(s)
			s.removeImages()
		}
		return nil
	})
	return m
}

// round boots the container (and its memory holder), checkpoints it with
// --stop (timed), restores it (timed), checks it runs, and stops it again.
// Each round boots afresh: a restored container is not checkpointed again.
func (ck *ckptBench) round(s *ckptSubject, c ckptCase, record bool, m *ckptMeasure) error {
	b := ck.b
	if err := ck.ensureStopped(s); err != nil {
		return failedAt(stagePrepare, err)
	}
	if err := s.removeImages(); err != nil {
		return failedAt(stagePrepare, err)
	}
	if _, err := s.run.timed(s.rt.StartCmd(s.name)); err != nil {
		return failedAt(stagePrepare, err)
	}
	p, err := s.rt.Procs(s.name)
	if err == nil && (p.Init == 0 || p.Monitor == 0) {
		err = fmt.Errorf("%s container %s does not run after its start", s.who, s.name)
	}
	if err != nil {
		return failedAt(stagePrepare, err)
	}
	if c.debian {
		if err := ck.waitSystemRunning(s, 60*time.Second); err != nil {
			return failedAt(stagePrepare, err)
		}
	}
	hog := ""
	if c.mib > 0 {
		if hog, err = ck.startMemhog(s, p.Init, c.mib); err != nil {
			return failedAt(stagePrepare, err)
		}
	}
	b.sleep(b.opts.settle)

	dump, printed, err := s.run.timedOutput(s.checkpointCmd)
	dir, dirErr := s.imageDir()
	if err != nil {
		if dirErr == nil {
			return &stageError{stageCheckpoint, err, criuLogErrors(dir, "dump.log")}
		}
		return failedAt(stageCheckpoint, err)
	}
	if err := b.waitStopped(s.rt, p); err != nil {
		return failedAt(stageCheckpoint, err)
	}
	if dirErr != nil {
		return failedAt(stageCheckpoint, dirErr)
	}
	size, err := imageBytes(dir)
	if err != nil {
		return failedAt(stageCheckpoint, err)
	}
	if err := s.beforeRestore(dir); err != nil {
		return failedAt(stageRestore, err)
	}
	restore, err := s.run.timed(s.restoreCmd)
	if err != nil {
		return &stageError{stageRestore, err, criuLogErrors(dir, "restore.log")}
	}
	q, err := s.rt.Procs(s.name)
	if err == nil && q.Init == 0 {
		err = fmt.Errorf("%s container %s is not running after its restore", s.who, s.name)
	}
	if err == nil && c.debian {
		err = ck.waitSystemRunning(s, 10*time.Second)
	}
	if err == nil && hog != "" {
		if _, err = s.run.output(s.rt.ExecCmd(s.name, "kill", "-0", hog)...); err != nil {
			err = fmt.Errorf("the memory holder (pid %s inside) is gone after the restore: %w", hog, err)
		}
	}
	if err != nil {
		return failedAt(stageVerify, err)
	}
	if record {
		m.dump.addDuration(s.who, dump)
		m.restore.addDuration(s.who, restore)
		m.size.add(s.who, float64(size)/(1<<20))
		ck.readStats(s.who, dir, m)
		if tars, err := filepath.Glob(filepath.Join(dir, "tmpfs-*.tar.gz.img")); err == nil {
			m.tarred[s.who] = len(tars)
		}
		if s.who == "lodge" {
			ck.readLodgeLogs(dir, printed, m)
		}
	}
	if _, err := s.run.timed(s.rt.StopCmd(s.name, true)); err != nil {
		return failedAt(stageVerify, err)
	}
	if err := b.waitStopped(s.rt, q); err != nil {
		return failedAt(stageVerify, err)
	}
	return failedAt(stageVerify, s.removeImages())
}

// readStats adds CRIU's own statistics of the dump and the restore.
func (ck *ckptBench) readStats(who, dir string, m *ckptMeasure) {
	f, err := os.Open(dir)
	if err != nil {
		return
	}
	defer f.Close()
	if d, err := stats.CriuGetDumpStats(f); err == nil && d != nil {
		m.frozen.add(who, float64(d.GetFrozenTime())/1000)
		m.memdump.add(who, float64(d.GetMemdumpTime())/1000)
		m.memwrite.add(who, float64(d.GetMemwriteTime())/1000)
	}
	if r, err := stats.CriuGetRestoreStats(f); err == nil && r != nil {
		m.restoreTime.add(who, float64(r.GetRestoreTime())/1000)
	}
}

// readLodgeLogs adds where the time of lodge's dump and restore went, from
// CRIU's logs (lodge runs CRIU at log level 4, with timestamps), and the
// dump's time as lodge reports it.
func (ck *ckptBench) readLodgeLogs(dir, printed string, m *ckptMeasure) {
	if ms, err := lodgeDumpMs(printed); err == nil {
		m.lodgeDumpCall = append(m.lodgeDumpCall, ms)
	}
	if phases, total, err := criuLogPhases(readCRIULog(dir, "dump.log"), dumpStartupEnd); err == nil {
		for name, ms := range phases {
			m.dumpPhases[name] = append(m.dumpPhases[name], ms)
		}
		m.dumpSpan = append(m.dumpSpan, total)
	}
	if phases, total, err := criuLogPhases(readCRIULog(dir, "restore.log"), restoreStartupEnd); err == nil {
		for name, ms := range phases {
			m.restorePhases[name] = append(m.restorePhases[name], ms)
		}
		m.restoreSpan = append(m.restoreSpan, total)
	}
}

// lodgeDumpMs reads "Checkpointed NAME in N ms" from lodge checkpoint's
// output: the time of CRIU's dump call, as lodge measured it.
func lodgeDumpMs(printed string) (float64, error) {
	_, rest, ok := strings.Cut(printed, "Checkpointed ")
	if ok {
		if _, after, ok := strings.Cut(rest, " in "); ok {
			if f := strings.Fields(after); len(f) >= 2 && f[1] == "ms" {
				return strconv.ParseFloat(f[0], 64)
			}
		}
	}
	return 0, fmt.Errorf("lodge checkpoint printed no `in N ms` (it printed %q)", strings.TrimSpace(printed))
}

// criuLogErrors is what CRIU's log in dir says went wrong: its Error lines,
// the last few.
func criuLogErrors(dir, name string) string {
	var errs []string
	for _, l := range strings.Split(readCRIULog(dir, name), "\n") {
		if i := strings.Index(l, "Error ("); i >= 0 && !strings.Contains(l, "RLIMIT_NOFILE") {
			errs = append(errs, strings.TrimSpace(l[i:]))
		}
	}
	if len(errs) == 0 {
		return "no error lines (" + name + ")"
	}
	return strings.Join(errs[:min(len(errs), 3)], "\n") // the cause comes first
}

// reason is the error in a few words, for a table cell: the step and what
// CRIU's log says first (without its source location), else the error.
func reason(err error) string {
	var se *stageError
	if errors.As(err, &se) && se.criu != "" {
		first, _, _ := strings.Cut(se.criu, "\n")
		if _, msg, ok := strings.Cut(first, "): "); ok {
			first = msg
		}
		return fmt.Sprintf("%s fails: %s", se.stage, first)
	}
	return err.Error()
}

// startMemhog starts the memory holder in the container, detached in its
// own session, and waits until it has touched its memory; it returns its
// pid inside the container. extra goes after memhog's arguments ("dirty").
func (ck *ckptBench) startMemhog(s *ckptSubject, init, mib int, extra ...string) (string, error) {
	ready := fmt.Sprintf("/proc/%d/root%s", init, memhogReady)
	os.Remove(ready)
	if _, err := s.run.output(memhogCmd(s, strconv.Itoa(mib), extra...)...); err != nil {
		return "", err
	}
	deadline := time.Now().Add(60 * time.Second)
	for ck.b.ctx.Err() == nil {
		if data, err := os.ReadFile(ready); err == nil {
			return strings.TrimSpace(string(data)), nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("%s: the memory holder did not report %d MiB touched within 60 s", s.who, mib)
		}
		ck.b.sleep(10 * time.Millisecond)
	}
	return "", ck.b.ctx.Err()
}

// memhogCmd starts the memory holder in s's container, holding mib MiB,
// detached in a session of its own (lxc-attach ends the attached session
// as it exits). extra goes after its arguments.
func memhogCmd(s *ckptSubject, mib string, extra ...string) []string {
	args := strings.Join(append([]string{memhogPath, mib, memhogReady}, extra...), " ")
	return s.rt.ExecCmd(s.name, "sh", "-c", fmt.Sprintf("setsid %s >/dev/null 2>&1 </dev/null &", args))
}

// waitSystemRunning waits until systemd in the container says `running`.
func (ck *ckptBench) waitSystemRunning(s *ckptSubject, timeout time.Duration) error {
	probe := s.rt.ExecCmd(s.name, "systemctl", "is-system-running", "--wait")
	began, last := time.Now(), ""
	for time.Since(began) < timeout && ck.b.ctx.Err() == nil {
		out, _ := s.run.output(probe...)
		switch last = strings.TrimSpace(out); last {
		case "running":
			return nil
		case "degraded", "maintenance", "stopping":
			failed, _ := s.run.output(s.rt.ExecCmd(s.name, "systemctl", "--failed", "--no-legend")...)
			return fmt.Errorf("%s container %s is %s, not running; failed units: %s", s.who, s.name, last, strings.TrimSpace(failed))
		}
		ck.b.sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("%s container %s: systemd not running after %v (last state %q)", s.who, s.name, timeout, last)
}

func (ck *ckptBench) ensureStopped(s *ckptSubject) error {
	p, err := s.rt.Procs(s.name)
	if err != nil || p.Init == 0 {
		return err
	}
	if _, err := s.run.timed(s.rt.StopCmd(s.name, true)); err != nil {
		return err
	}
	return ck.b.waitStopped(s.rt, p)
}

// lodgeBusybox makes lodge's busybox container name (on the benchmark's
// lodge) with the memory holder in it.
func (ck *ckptBench) lodgeBusybox(name string) *ckptSubject {
	l := ck.b.lodge
	ck.res.Commands = append(ck.res.Commands, l.display(l.CreateCmd(name)))
	s := ck.lodgeSubject(l, name)
	ck.res.Commands = append(ck.res.Commands, l.display(memhogCmd(s, "MIB")))
	if s.err = l.Create(name); s.err != nil {
		return s
	}
	view, err := storage.OpenView(l.root, filepath.Join(l.root, "containers", name), true)
	if err != nil {
		s.err = fmt.Errorf("install memhog in %s: %w", name, err)
		return s
	}
	defer view.Close()
	s.err = installFile(ck.b.opts.memhog, filepath.Join(view.Dir, memhogPath), 0)
	return s
}

// lodgeDebian makes lodge's Debian container name on dir storage (on
// overlay a Debian dump fails today: docs/checkpoint.md).
func (ck *ckptBench) lodgeDebian(name string) *ckptSubject {
	l, err := ck.b.backendLodge("dir")
	if err != nil {
		return &ckptSubject{who: "lodge", name: name, err: err}
	}
	ck.res.Commands = append(ck.res.Commands, l.display(l.debianCreate(name)))
	s := ck.lodgeSubject(l, name)
	// The first create on a machine builds the image (debootstrap, minutes).
	if _, err := l.run.outputWithin(15*time.Minute, l.debianCreate(name)...); err != nil {
		s.err = err
	}
	return s
}

func (ck *ckptBench) lodgeSubject(l *lodgeRuntime, name string) *ckptSubject {
	checkpoints := filepath.Join(l.root, "containers", name, "checkpoints")
	s := &ckptSubject{who: "lodge", rt: l, run: l.run, display: l.display, name: name,
		checkpointCmd: l.argv("checkpoint", "--stop", name),
		restoreCmd:    l.argv("restore", name),
		imageDir:      func() (string, error) { return newestCheckpoint(checkpoints) },
		beforeRestore: func(string) error { return nil },
		removeImages: func() error {
			entries, _ := os.ReadDir(checkpoints)
			var errs []error
			for _, e := range entries {
				errs = append(errs, os.RemoveAll(filepath.Join(checkpoints, e.Name())))
			}
			return errors.Join(errs...)
		},
	}
	ck.res.Commands = append(ck.res.Commands, l.display(s.checkpointCmd), l.display(s.restoreCmd))
	return s
}

// newestCheckpoint is the newest complete checkpoint directory in dir
// (lodge names them by time; a .tmp one is incomplete).
func newestCheckpoint(dir string) (string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasSuffix(e.Name(), ".tmp") {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		return "", fmt.Errorf("no checkpoint in %s", dir)
	}
	sort.Strings(names)
	return filepath.Join(dir, names[len(names)-1]), nil
}

// lxcSubject makes LXC's container name (busybox, or Debian on a copy of
// lodge's Debian files) and makes it checkpointable: no ttys and no console
// (CRIU cannot dump a pty whose master LXC's monitor holds), for busybox
// no binds of the host's library directories and an inittab without
// gettys. Its first round runs untimed with the idmapped rootfs of the
// other sections; if the restore fails, the rootfs is shifted (chowned)
// to the container's ids instead, as LXC did before idmapped mounts.
func (ck *ckptBench) lxcSubject(name string, debian bool) *ckptSubject {
	b, x := ck.b, ck.b.lxc
	dir := filepath.Join(b.tmp, "lxc-ckpt", name)
	s := &ckptSubject{who: "LXC", rt: x, run: ck.lxcRun, name: name,
		display: func(argv []string) string {
			return "PATH=" + b.display(filepath.Join(b.tmp, "criu-bin")) + ":$PATH " + b.run.display(argv)
		},
		checkpointCmd: x.tool("lxc-checkpoint", "-s", "-D", dir, "-n", name, "-P", x.path),
		restoreCmd:    x.tool("lxc-checkpoint", "-r", "-D", dir, "-n", name, "-P", x.path),
		imageDir:      func() (string, error) { return dir, nil },
		beforeRestore: readableByAll,
		removeImages:  func() error { return os.RemoveAll(dir) },
	}
	create := x.CreateCmd(name)
	if debian {
		create = b.lxcDebianCreate(name)
	}
	ck.res.Commands = append(ck.res.Commands, b.run.display(create))
	if !debian {
		ck.res.Commands = append(ck.res.Commands, b.run.display(memhogCmd(s, "MIB")))
	}
	ck.res.Commands = append(ck.res.Commands, s.display(s.checkpointCmd), "chmod -R a+rX "+b.display(dir), s.display(s.restoreCmd))
	if err := os.MkdirAll(filepath.Dir(dir), 0o711); err != nil {
		s.err = err
		return s
	}
	if s.err = ck.createLXC(name, debian); s.err != nil {
		return s
	}
	// The probe: one untimed round as the other sections run LXC.
	probe := ckptCase{label: "probe", debian: debian}
	err := ck.round(s, probe, false, newCkptMeasure())
	var se *stageError
	if err == nil || !errors.As(err, &se) || se.stage != stageRestore {
		s.err = err
		return s
	}
	what := map[bool]string{false: "busybox", true: "Debian"}[debian]
	ck.notes = append(ck.notes, fmt.Sprintf("LXC's %s container on an idmapped rootfs (`lxc.rootfs.options = idmap=container`, as in the other sections) "+
		"is checkpointed but does not restore: `lxc-checkpoint -r` fails, CRIU's restore.log says: %s. The restore does not mount the rootfs "+
		"idmapped, so the restored tasks see its files as owned by nobody. Its rootfs was therefore shifted to the container's ids "+
		"(chown by %d, the map's start, as LXC did before idmapped mounts) and the idmap option removed, for the measured rounds.",
		what, strings.ReplaceAll(se.criu, "\n", "; "), x.uids.Range.Start))
	ck.ensureStopped(s)
	s.removeImages()
	s.err = ck.shiftLXC(name)
	return s
}

// createLXC creates LXC container name and adapts its config for CRIU.
func (ck *ckptBench) createLXC(name string, debian bool) error {
	b, x := ck.b, ck.b.lxc
	if debian {
		x.created = append(x.created, name)
		if _, err := x.run.output(b.lxcDebianCreate(name)...); err != nil {
			return fmt.Errorf("%w (lxc-debian needs the lxc-templates and rsync packages: make bench installs them)", err)
		}
		if err := b.lxcOnLodgeRootfs(name); err != nil {
			return err
		}
	} else {
		if err := x.Create(name); err != nil {
			return err
		}
		rootfs := filepath.Join(x.path, name, "rootfs")
		if err := installFile(b.opts.memhog, filepath.Join(rootfs, memhogPath), 0); err != nil {
			return err
		}
		// busybox init with no console and no ttys: rcS only (it starts syslogd).
		if err := os.WriteFile(filepath.Join(rootfs, "etc/inittab"), []byte("::sysinit:/etc/init.d/rcS\n"), 0o644); err != nil {
			return err
		}
		if err := editLXCConfig(filepath.Join(x.path, name, "config"), isLibraryBind); err != nil {
			return err
		}
	}
	return x.appendConfig(name, "checkpointable by CRIU: no ttys, no console", lxcCheckpointConfig)
}

// lxcCheckpointConfig is what LXC's container needs for lxc-checkpoint:
// with ttys and a console, whose pty masters LXC's monitor holds, the dump
// fails ("tty: Unable to find a master for /4").
var lxcCheckpointConfig = []string{"lxc.tty.max = 0", "lxc.console.path = none"}

// isLibraryBind matches the busybox template's binds of the host's library
// directories, which a static busybox does not use and CRIU's restore
// fails on here ("mnt-v2: Failed to open_tree /usr/lib: Invalid argument").
func isLibraryBind(line string) bool {
	for _, dir := range []string{"/lib", "/usr/lib", "/lib64", "/usr/lib64"} {
		if strings.HasPrefix(strings.TrimSpace(line), "lxc.mount.entry = "+dir+" ") {
			return true
		}
	}
	return false
}

// editLXCConfig removes the lines drop matches from an LXC config.
func editLXCConfig(path string, drop func(string) bool) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var kept []string
	for _, l := range strings.Split(string(data), "\n") {
		if !drop(l) {
			kept = append(kept, l)
		}
	}
	return os.WriteFile(path, []byte(strings.Join(kept, "\n")), 0o640)
}

// shiftLXC chowns LXC container name's rootfs by the id map's start and
// drops the idmapped mount: an unprivileged LXC container in the classic
// way. The container's directory must then be reachable by its root.
func (ck *ckptBench) shiftLXC(name string) error {
	x := ck.b.lxc
	if err := editLXCConfig(filepath.Join(x.path, name, "config"), func(l string) bool {
		return strings.TrimSpace(l) == "lxc.rootfs.options = idmap=container"
	}); err != nil {
		return err
	}
	if err := os.Chmod(filepath.Join(x.path, name), 0o711); err != nil {
		return err
	}
	return shiftTree(filepath.Join(x.path, name, "rootfs"), int(x.uids.Range.Start), int(x.gids.Range.Start))
}

// shiftTree adds uid and gid to the owner of every file below root, keeping
// the modes (a chown clears set-user-ID bits).
func shiftTree(root string, uid, gid int) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("%s: no owner", path)
		}
		if err := os.Lchown(path, int(st.Uid)+uid, int(st.Gid)+gid); err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink == 0 {
			return os.Chmod(path, info.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))
		}
		return nil
	})
}

// readableByAll lets the container's root read LXC's checkpoint: the
// restored tasks, in the container's user namespace, open some images
// themselves ("Unable to open tty-info.img: Permission denied" otherwise).
// lodge does the same inside its restore.
func readableByAll(dir string) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		mode := info.Mode().Perm() | 0o444
		if d.IsDir() {
			mode |= 0o111
		}
		return os.Chmod(path, mode)
	})
}

// installFile copies src to dst (making its directory), executable, owned
// by uid (and the same gid).
func installFile(src, dst string, uid int) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(dst, data, 0o755); err != nil {
		return err
	}
	return os.Lchown(dst, uid, uid)
}

// rows turns a case's measurements into the report's rows and notes.
func (ck *ckptBench) rows(c ckptCase, subjects []*ckptSubject, m *ckptMeasure) {
	mk := func(metric string, k kind, s samples, t *target) row {
		r := newRow(metric+", "+c.label, k, s, t)
		if err := m.failed["lodge"]; err != nil {
			r.Unavailable = reason(err)
		}
		if err := m.failed["LXC"]; err != nil {
			r.LXCUnavailable = reason(err)
		}
		return r
	}
	ck.res.Rows = append(ck.res.Rows,
		mk("checkpoint (`--stop`)", latency, m.dump, targetNoSlower),
		mk("restore", latency, m.restore, targetNoSlower),
		mk("checkpoint size", memory, m.size, nil),
	)
	for _, who := range []string{"lodge", "LXC"} {
		if err := m.failed[who]; err != nil {
			ck.notes = append(ck.notes, fmt.Sprintf("%s, %s: not measured: %s", c.label, who, strings.ReplaceAll(err.Error(), "\n", "; ")))
		}
	}
	med := func(v []float64) float64 { return summarize(v).Median }
	var parts []string
	for _, who := range []string{"lodge", "LXC"} {
		if len(m.frozen[who]) == 0 {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s: tasks frozen %.0f ms, memory dump %.0f ms and write %.0f ms; restore %.0f ms; %d tmpfs mounts archived with tar",
			who, med(m.frozen[who]), med(m.memdump[who]), med(m.memwrite[who]), med(m.restoreTime[who]), m.tarred[who]))
	}
	if len(parts) > 0 {
		ck.notes = append(ck.notes, fmt.Sprintf("%s, CRIU's own statistics (stats-dump and stats-restore, medians): %s.", c.label, strings.Join(parts, "; ")))
	}
	if len(m.dumpSpan) > 0 {
		phase := func(all map[string][]float64) map[string]float64 {
			out := map[string]float64{}
			for name, v := range all {
				out[name] = med(v)
			}
			return out
		}
		note := fmt.Sprintf("%s, where lodge's time goes (medians): the checkpoint command %.0f ms, CRIU's dump call in it %.0f ms (lodge's `in N ms`), "+
			"CRIU's dump log spans %.0f ms: %s. The restore command %.0f ms; CRIU's restore log spans %.0f ms: %s.",
			c.label, med(m.dump["lodge"]), med(m.lodgeDumpCall), med(m.dumpSpan), formatPhases(phase(m.dumpPhases)),
			med(m.restore["lodge"]), med(m.restoreSpan), formatPhases(phase(m.restorePhases)))
		ck.notes = append(ck.notes, note)
	}
}

func (ck *ckptBench) method(criuDir string) []string {
	b := ck.b
	return []string{
		fmt.Sprintf("Both runtimes use the same CRIU, %s: lodge finds it itself; `lxc-checkpoint` runs the `criu` on its PATH, "+
			"so its commands run with `%s` (a link to it) first on PATH.", ck.criu, b.display(criuDir)),
		"Each round, per runtime in turn: start the container (untimed; Debian: until `systemctl is-system-running` says `running`; " +
			"with memory: start `lodge-memhog MIB` inside, a static program (`cmd/lodge-bench/memhog`) that allocates MIB MiB, writes every byte " +
			"and sleeps, and wait until it says it is done), checkpoint it with stop (**timed**: `lodge checkpoint --stop`, `lxc-checkpoint -s`), " +
			"wait until its processes are gone, restore it (**timed**: `lodge restore`, `lxc-checkpoint -r`), check untimed that it runs " +
			"(Debian: `running` again, no failed unit; with memory: the holder still lives) and stop it. Every round boots afresh, " +
			"as LXC's container must (a restored lodge container checkpoints again: tests.TestCheckpointRestoreDebian does 10 rounds). " +
			fmt.Sprintf("%d rounds (Debian %d, 1 GiB %d), the idle busybox after one untimed round.", b.opts.ckptRounds, min(3, b.opts.ckptRounds), b.opts.ckptBigRounds),
		"The size is the checkpoint directory's files without CRIU's logs (lodge's includes its record, checkpoint.json). " +
			"lodge's containers: busybox on the benchmark's lodge (overlay), Debian on dir storage (the storage of LXC's copy of it). " +
			"LXC's: a busybox container as elsewhere and a Debian one on a copy of lodge's Debian files, both made checkpointable: " +
			"`lxc.tty.max = 0` and `lxc.console.path = none` (with LXC's ttys the dump fails: \"tty: Unable to find a master for /4\": CRIU cannot " +
			"dump a pty whose master LXC's monitor holds); busybox's inittab keeps only rcS (init and syslogd run), and the template's binds of the " +
			"host's /lib, /usr/lib, /lib64, /usr/lib64 go (a static busybox does not use them; their restore fails: \"mnt-v2: Failed to open_tree " +
			"/usr/lib: Invalid argument\"). lodge's busybox runs init and a getty on its console. Between LXC's dump and restore (untimed) its images " +
			"are made readable by all: the restored tasks, in the container's user namespace, open some themselves (\"Unable to open tty-info.img: " +
			"Permission denied\"); lodge does that inside its restore.",
		"Where the time goes: lodge runs CRIU at log level 4, whose lines carry the time since CRIU started; each gap between two lines is counted " +
			"to the line before it (CRIU logs what it is about to do: `Running ip addr save`, the tmpfs mount it archives with tar). " +
			"LXC runs CRIU at its default level, without timestamps, so its side is CRIU's statistics only (stats-dump: the time the tasks were frozen, " +
			"CRIU's memory dump and memory write times, which it counts separately and which overlap; stats-restore: restore time).",
	}
}
