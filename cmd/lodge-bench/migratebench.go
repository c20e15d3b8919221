package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"lodge/config"
	"lodge/internal/cgroup"
	"lodge/migrate"
)

// The migration group moves running containers from one host to another
// and back, both "hosts" on this machine: for lodge, two lodge roots, each
// served by its own `lodge serve` on 127.0.0.1 and trusted by the other,
// with `lodge migrate NAME REMOTE`; for LXC, two lxcpaths, with the only
// way LXC offers: `lxc-checkpoint -s`, a copy of the container and its
// images, `lxc-checkpoint -r` (the same CRIU). Cases: an idle busybox,
// Debian with systemd, and busybox keeping 256 MiB dirty. No NICs: both
// roots are on one machine, and a NIC-less container needs no network
// namespace of its own host.

func migrationGroup() group {
	return group{Name: "migration", Title: "Migration", Run: runMigration}
}

var (
	targetDowntimeIdle = &target{Text: "downtime < 400 ms", MaxLodge: 400}
	targetDowntimeBusy = &target{Text: "downtime < 1.5 s", MaxLodge: 1500}
)

// stageMigrate is a failed migration (lodge migrate, or LXC's steps).
const stageMigrate ckptStage = "migrate"

// hostNames are the two lodge roots' names: each knows the other as a
// remote by this name.
var hostNames = [2]string{"h1", "h2"}

// migCase is one kind of container migrated back and forth.
type migCase struct {
	label  string
	mib    int // memory the holder keeps dirty; 0 for none
	debian bool
	target *target // on the downtime
}

// migLodge is lodge's container of a case and where it runs now.
type migLodge struct {
	name string
	at   int    // index into migBench.hosts
	hog  string // the memory holder's pid inside, "" for none
	err  error  // could not be prepared: its rows say why
}

// migLXC is LXC's container of a case and the lxcpath that holds it.
type migLXC struct {
	name string
	at   int // index into migBench.lxc
	err  error
}

// migMeasure is what the rounds of one case measured.
type migMeasure struct {
	downtime, total samples
	command         []float64            // lodge migrate's wall time, ms
	phases          map[string][]float64 // lodge's (its JSON) and LXC's steps, ms, by "who: phase"
	sent            []float64            // lodge: MiB sent
	images          []float64            // lodge: MiB of the checkpoint sent
	// local is lodge's checkpoint --stop and restore of the same container
	// on one host, after each migration: the floor of a stop-and-copy,
	// with CRIU's logs read.
	local  *ckptMeasure
	failed map[string]error
}

func newMigMeasure() *migMeasure {
	return &migMeasure{downtime: samples{}, total: samples{}, phases: map[string][]float64{}, local: newCkptMeasure(), failed: map[string]error{}}
}

type migBench struct {
	b        *bench
	ck       *ckptBench // LXC's containers and the checkpoint group's helpers
	res      *groupResult
	hosts    [2]*lodgeRuntime
	addrs    [2]string // where each host's lodge serve listens
	lxc      [2]*lxcRuntime
	liveNote string
	notes    []string
}

// migrateJSON is the part of `lodge migrate --format json` read here.
type migrateJSON struct {
	Mode     string `json:"mode"`
	Live     string `json:"live"`
	Downtime int64  `json:"downtime_ns"`
	Total    int64  `json:"total_ns"`
	Bytes    int64  `json:"bytes"`
	Phases   []struct {
		Name  string `json:"name"`
		Time  int64  `json:"time_ns"`
		Bytes int64  `json:"bytes"`
	} `json:"phases"`
}

func runMigration(b *bench) (*groupResult, error) {
	res := &groupResult{}
	criu, err := migrate.FindCRIU("")
	if err != nil {
		return res, fmt.Errorf("%w (make deps installs CRIU)", err)
	}
	if _, err := os.Stat(b.opts.memhog); err != nil {
		return res, fmt.Errorf("memhog: %w (make bench builds it)", err)
	}
	// The checkpoint group's helpers make the containers; its commands
	// and rows are not this group's (a scratch result takes them).
	ck := &ckptBench{b: b, res: &groupResult{}, criu: criu}
	criuDir, err := b.criuOnPath(ck, criu)
	if err != nil {
		return res, err
	}
	mb := &migBench{b: b, ck: ck, res: res}
	if err := mb.setUpHosts(); err != nil {
		return res, fmt.Errorf("set up the second lodge root: %w", err)
	}
	if err := mb.setUpLXCPaths(); err != nil {
		return res, err
	}
	res.Method = mb.method(criu, criuDir)

	cases := []migCase{
		{label: "idle busybox"},
		{label: "Debian with systemd", debian: true, target: targetDowntimeIdle},
		{label: "busybox keeping 256 MiB dirty", mib: 256, target: targetDowntimeBusy},
	}
	busybox := &migLodge{name: "mig1"}
	if s := ck.lodgeBusybox(busybox.name); s.err != nil {
		busybox.err = s.err
	} else {
		busybox.err = mb.startLodge(busybox, false)
	}
	xbusybox := &migLXC{name: "xmig1"}
	if s := ck.lxcSubject(xbusybox.name, false); s.err != nil {
		xbusybox.err = s.err
	}
	mb.lxc[1].created = append(mb.lxc[1].created, xbusybox.name)
	var debian *migLodge
	var xdebian *migLXC
	for _, c := range cases {
		if b.ctx.Err() != nil {
			break
		}
		l, x := busybox, xbusybox
		if c.debian {
			debian, xdebian = mb.prepareDebian()
			l, x = debian, xdebian
		}
		if c.mib > 0 && l.err == nil {
			l.err = mb.startLodgeMemhog(l, c.mib)
		}
		b.logf("migration: %s", c.label)
		m := mb.measureCase(c, l, x)
		mb.rows(c, m)
		if c.debian {
			// Done with Debian: its memory goes back before the busy case.
			mb.removeLodge(debian)
		}
	}
	mb.removeLodge(busybox)
	for _, x := range []*migLXC{xbusybox, xdebian} {
		if x != nil && x.err == nil {
			mb.ensureLXCStopped(x)
		}
	}
	if mb.liveNote != "" {
		mb.notes = append([]string{"`lodge migrate --live` (one migration of the idle busybox, its warm-up round) printed: " + mb.liveNote}, mb.notes...)
	}
	res.Notes = append(res.Notes, ck.notes...)
	res.Notes = append(res.Notes, mb.notes...)
	return res, b.ctx.Err()
}

// criuOnPath makes $TMP/criu-bin/criu, a link to lodge's CRIU, and sets
// ck.lxcRun to run LXC's tools with it first on PATH (lxc-checkpoint runs
// the criu it finds there). It returns the directory.
func (b *bench) criuOnPath(ck *ckptBench, criu *migrate.CRIU) (string, error) {
	dir := filepath.Join(b.tmp, "criu-bin")
	link := filepath.Join(dir, "criu")
	if _, err := os.Lstat(link); err != nil {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", err
		}
		if err := os.Symlink(criu.Path, link); err != nil {
			return "", err
		}
	}
	ck.lxcRun = b.run.withEnv("PATH=" + dir + ":" + basePATH)
	ck.res.Commands = append(ck.res.Commands, b.run.display([]string{"ln", "-s", criu.Path, link}))
	return dir, nil
}

// setUpHosts makes the second lodge root (h2) next to the benchmark's own
// (h1), starts a lodge serve for each on 127.0.0.1 and has each trust the
// other (lodge trust add, lodge remote add).
func (mb *migBench) setUpHosts() error {
	b := mb.b
	h2, err := b.lodge.migrationPeer(b.tmp)
	if err != nil {
		return err
	}
	b.addCleanup(func() error { return removeCgroups(h2.cgroupName) })
	b.addCleanup(h2.cleanup)
	mb.hosts = [2]*lodgeRuntime{b.lodge, h2}
	for i, l := range mb.hosts {
		addr, err := mb.serve(l, hostNames[i])
		if err != nil {
			return err
		}
		mb.addrs[i] = addr
	}
	for i := range mb.hosts {
		from, to := mb.hosts[i], mb.hosts[1-i]
		token, err := to.run.output(to.argv("trust", "add", "--name", hostNames[i])...)
		if err != nil {
			return err
		}
		if _, err := from.run.output(from.argv("remote", "add", hostNames[1-i], mb.addrs[1-i], "--token", strings.TrimSpace(token))...); err != nil {
			return err
		}
	}
	mb.res.Commands = append(mb.res.Commands,
		"# h1 is the benchmark's lodge (LODGE_HOST_CONFIG=$TMP/lodge.toml), h2 the second root:",
		mb.display(1, h2.argv("serve", "--listen", "127.0.0.1:0")),
		mb.display(0, b.lodge.argv("serve", "--listen", "127.0.0.1:0")),
		mb.display(1, h2.argv("trust", "add", "--name", "h1"))+"  # prints TOKEN",
		mb.display(0, b.lodge.argv("remote", "add", "h2", "127.0.0.1:PORT2", "--token", "TOKEN")),
		"# and the same the other way round (h2 knows h1 as h1)")
	return nil
}

// migrationPeer returns a lodge with its own root and host config in dir:
// the same [idmap] pool and image cache as l (a migration keeps the
// container's id range, which must be in the target's pool and free
// there), its own cgroup base (l's name with "-h2", below the benchmark's
// cgroup) and its own network tag.
func (l *lodgeRuntime) migrationPeer(dir string) (*lodgeRuntime, error) {
	o := *l
	o.root, o.hostConfig, o.cgroupName = filepath.Join(dir, "lodge-h2"), filepath.Join(dir, "lodge-h2.toml"), l.cgroupName+"-h2"
	parents, err := cgroup.OwnParents(o.cgroupName)
	if err != nil {
		return nil, err
	}
	o.configText = fmt.Sprintf("version = 1\n\n[idmap]\nfirst = %d\n\n[images]\ndir = %q\n\n[network]\ntag = %q\n\n", lodgeIDFirst, benchImages, "bh2") +
		config.CgroupTOML("/"+o.cgroupName, parents)
	if err := os.WriteFile(o.hostConfig, []byte(o.configText), 0o644); err != nil {
		return nil, err
	}
	o.run = l.run.withEnv(config.HostConfigEnv + "=" + o.hostConfig)
	return &o, nil
}

// display is a lodge command of host i as a user would type it.
func (mb *migBench) display(i int, argv []string) string {
	line := mb.b.run.display(argv)
	if i == 1 {
		line = config.HostConfigEnv + "=" + mb.b.display(mb.hosts[1].hostConfig) + " " + line
	}
	return line
}

// serve starts `lodge serve --listen 127.0.0.1:0` for l and returns the
// address it listens on. The run's clean-up stops it (SIGTERM to its pid).
func (mb *migBench) serve(l *lodgeRuntime, name string) (string, error) {
	b := mb.b
	logs, err := os.Create(filepath.Join(b.tmp, "serve-"+name+".log"))
	if err != nil {
		return "", err
	}
	defer logs.Close() // the child has its own copy
	cmd := exec.Command(l.bin, "--root", l.root, "serve", "--listen", "127.0.0.1:0")
	cmd.Env = l.run.env
	cmd.Stderr = logs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	b.addCleanup(func() error { return stopServe(cmd) })
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "Serving on "); ok {
				addr, _, _ := strings.Cut(rest, " ")
				ready <- addr
			}
		}
		close(ready)
		io.Copy(io.Discard, stdout)
	}()
	select {
	case addr, ok := <-ready:
		if !ok {
			data, _ := os.ReadFile(logs.Name())
			return "", fmt.Errorf("lodge serve for %s exited before it listened: %s", name, lastLines(strings.TrimSpace(string(data)), 5))
		}
		return addr, nil
	case <-time.After(time.Minute): // a hang guard
		return "", fmt.Errorf("lodge serve for %s did not listen within a minute", name)
	}
}

// stopServe stops a lodge serve this benchmark started, by its pid.
func stopServe(cmd *exec.Cmd) error {
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
		return nil
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		return fmt.Errorf("lodge serve (pid %d) ignored SIGTERM for 30 s: killed", cmd.Process.Pid)
	}
}

// setUpLXCPaths makes the second lxcpath, $TMP/lxc-h2, next to the
// benchmark's $TMP/lxc.
func (mb *migBench) setUpLXCPaths() error {
	x2 := *mb.b.lxc
	x2.path, x2.created = filepath.Join(mb.b.tmp, "lxc-h2"), nil
	if err := os.Mkdir(x2.path, 0o711); err != nil {
		return err
	}
	mb.lxc = [2]*lxcRuntime{mb.b.lxc, &x2}
	mb.b.addCleanup(x2.cleanup)
	return nil
}

// startLodge starts lodge's container on the host it is on (untimed) and,
// for Debian, waits until systemd says running.
func (mb *migBench) startLodge(s *migLodge, debian bool) error {
	l := mb.hosts[s.at]
	if _, err := l.run.output(l.StartCmd(s.name)...); err != nil {
		return err
	}
	if debian {
		return mb.ck.waitSystemRunning(mb.lodgeSubject(s), 60*time.Second)
	}
	return nil
}

// lodgeSubject is s as the checkpoint group's helpers take it, on the host
// it runs on now.
func (mb *migBench) lodgeSubject(s *migLodge) *ckptSubject {
	l := mb.hosts[s.at]
	return &ckptSubject{who: "lodge", rt: l, run: l.run, name: s.name}
}

// startLodgeMemhog starts the memory holder, keeping mib MiB dirty, in
// lodge's running container.
func (mb *migBench) startLodgeMemhog(s *migLodge, mib int) error {
	subject := mb.lodgeSubject(s)
	p, err := subject.rt.Procs(s.name)
	if err != nil {
		return err
	}
	s.hog, err = mb.ck.startMemhog(subject, p.Init, mib, "dirty")
	return err
}

// prepareDebian makes lodge's Debian container (on the benchmark's lodge,
// its default storage) and starts it, and LXC's (on a copy of lodge's
// Debian files, as the checkpoint group does).
func (mb *migBench) prepareDebian() (*migLodge, *migLXC) {
	l := &migLodge{name: "migdeb"}
	h1 := mb.hosts[0]
	// The first create on a machine builds the image (debootstrap, minutes).
	if _, err := h1.run.outputWithin(15*time.Minute, h1.debianCreate(l.name)...); err != nil {
		l.err = err
	} else {
		l.err = mb.startLodge(l, true)
	}
	x := &migLXC{name: "xmigdeb"}
	if s := mb.ck.lxcSubject(x.name, true); s.err != nil {
		x.err = s.err
	}
	mb.lxc[1].created = append(mb.lxc[1].created, x.name)
	return l, x
}

// removeLodge deletes lodge's container wherever it is.
func (mb *migBench) removeLodge(s *migLodge) {
	if s == nil {
		return
	}
	for _, l := range mb.hosts {
		if _, err := l.info(s.name); err == nil {
			l.Destroy(s.name)
		}
	}
}

// measureCase migrates each runtime's container back and forth, the
// runtimes in turn; the first round of each is untimed. A runtime whose
// round fails is not measured further in this case; its rows say why.
func (mb *migBench) measureCase(c migCase, l *migLodge, x *migLXC) *migMeasure {
	m := newMigMeasure()
	if l.err != nil {
		m.failed["lodge"] = l.err
	}
	if x.err != nil {
		m.failed["LXC"] = x.err
	}
	const warm = 1
	mb.b.sleep(mb.b.opts.settle)
	inTurn(mb.b, warm+mb.b.opts.migRounds, []string{"lodge", "LXC"}, func(round int, who string) error {
		if m.failed[who] != nil {
			return nil
		}
		var err error
		if who == "lodge" {
			// The idle busybox's warm-up migration asks for --live.
			live := round < warm && c.mib == 0 && !c.debian
			err = mb.lodgeRound(l, c, round >= warm, live, m)
		} else {
			err = mb.lxcRound(x, c, round >= warm, m)
		}
		if err != nil {
			m.failed[who] = err
			mb.b.logf("migration: %s, %s: %v", c.label, who, err)
		}
		mb.b.sleep(mb.b.opts.settle)
		return nil
	})
	return m
}

// lodgeRound migrates lodge's container to the other host (timed: the
// command, and its own downtime and total) and checks that it runs there
// and not here any more.
func (mb *migBench) lodgeRound(s *migLodge, c migCase, record, live bool, m *migMeasure) error {
	from, to := mb.hosts[s.at], mb.hosts[1-s.at]
	args := []string{"migrate", s.name, hostNames[1-s.at], "--format", "json"}
	if live {
		args = append(args, "--live")
	}
	wall, printed, err := from.run.timedOutput(from.argv(args...))
	if err != nil {
		return failedAt(stageMigrate, err)
	}
	var r migrateJSON
	// stdout (the JSON) comes first, the progress on stderr after it.
	if err := json.NewDecoder(strings.NewReader(printed)).Decode(&r); err != nil {
		return failedAt(stageMigrate, fmt.Errorf("lodge migrate --format json: %w: %q", err, firstLine(printed, 200)))
	}
	s.at = 1 - s.at
	if live {
		mb.liveNote = r.Live
	}
	p, err := to.Procs(s.name)
	if err == nil && p.Init == 0 {
		err = fmt.Errorf("lodge container %s does not run on %s after its migration", s.name, hostNames[s.at])
	}
	if err == nil {
		if _, infoErr := from.info(s.name); infoErr == nil {
			err = fmt.Errorf("lodge container %s is still on %s after its migration", s.name, hostNames[1-s.at])
		}
	}
	if err == nil && c.debian {
		err = mb.ck.waitSystemRunning(mb.lodgeSubject(s), 10*time.Second)
	}
	if err == nil && s.hog != "" {
		if _, err = to.run.output(to.ExecCmd(s.name, "kill", "-0", s.hog)...); err != nil {
			err = fmt.Errorf("the memory holder (pid %s inside) is gone after the migration: %w", s.hog, err)
		}
	}
	if err != nil {
		return failedAt(stageVerify, err)
	}
	if !record {
		return nil
	}
	if err := mb.localCheckpoint(s, p, m.local); err != nil {
		return err
	}
	ms := func(ns int64) float64 { return float64(ns) / 1e6 }
	m.downtime.add("lodge", ms(r.Downtime))
	m.total.add("lodge", ms(r.Total))
	m.command = append(m.command, float64(wall.Microseconds())/1000)
	m.sent = append(m.sent, float64(r.Bytes)/(1<<20))
	inFreeze := 0.0
	for _, ph := range r.Phases {
		name, _, _ := strings.Cut(ph.Name, " (")
		m.phases["lodge: "+name] = append(m.phases["lodge: "+name], ms(ph.Time))
		switch name {
		case "rootfs delta", "checkpoint transfer", "restore on the target":
			inFreeze += ms(ph.Time)
		}
		if name == "checkpoint transfer" {
			m.images = append(m.images, float64(ph.Bytes)/(1<<20))
		}
	}
	// The downtime runs from the freeze, seen during the dump, to the end
	// of the restore: what is not the three steps after the dump is the
	// dump's frozen part.
	m.phases["lodge: dump, frozen"] = append(m.phases["lodge: dump, frozen"], ms(r.Downtime)-inFreeze)
	return nil
}

// localCheckpoint checkpoints lodge's container with stop and restores it
// on the host it runs on now (both timed, CRIU's logs read): what the same
// dump and restore cost without a second host, in the same conditions. It
// checks that it runs again and removes the checkpoint.
func (mb *migBench) localCheckpoint(s *migLodge, p procs, m *ckptMeasure) error {
	l := mb.hosts[s.at]
	cs := mb.ck.lodgeSubject(l, s.name)
	dump, printed, err := l.run.timedOutput(cs.checkpointCmd)
	if err != nil {
		return failedAt(stageCheckpoint, err)
	}
	if err := mb.b.waitStopped(l, p); err != nil {
		return failedAt(stageCheckpoint, err)
	}
	dir, err := cs.imageDir()
	if err != nil {
		return failedAt(stageCheckpoint, err)
	}
	restore, err := l.run.timed(cs.restoreCmd)
	if err != nil {
		return &stageError{stageRestore, err, criuLogErrors(dir, "restore.log")}
	}
	m.dump.addDuration("lodge", dump)
	m.restore.addDuration("lodge", restore)
	mb.ck.readStats("lodge", dir, m)
	mb.ck.readLodgeLogs(dir, printed, m)
	if q, err := l.Procs(s.name); err != nil || q.Init == 0 {
		return failedAt(stageVerify, fmt.Errorf("lodge container %s does not run after its restore (%v)", s.name, err))
	}
	if s.hog != "" {
		if _, err := l.run.output(l.ExecCmd(s.name, "kill", "-0", s.hog)...); err != nil {
			return failedAt(stageVerify, fmt.Errorf("the memory holder (pid %s inside) is gone after the restore: %w", s.hog, err))
		}
	}
	return failedAt(stageVerify, cs.removeImages())
}

// lxcCopyCmds are the copy steps between LXC's dump and its restore:
// the container (rootfs and config, with its paths changed to the
// target's) and the images.
func lxcCopyCmds(srcDir, dstDir, srcImages, dstImages string) [][]string {
	return [][]string{
		{"rsync", "-aHAX", "--numeric-ids", "--delete", srcDir + "/", dstDir + "/"},
		{"sed", "-i", "s#" + srcDir + "#" + dstDir + "#g", filepath.Join(dstDir, "config")},
		{"rsync", "-a", "--delete", srcImages + "/", dstImages + "/"},
	}
}

// lxcRound boots LXC's container afresh (untimed; as the checkpoint group
// finds, LXC's restored container is not checkpointed again), starts the
// memory holder, and migrates it to the other lxcpath: an rsync of the
// container while it runs, then (the downtime) lxc-checkpoint -s, the
// copy after it, lxc-checkpoint -r there; then the source is destroyed
// (in the total). It checks that it runs there and stops it (untimed).
func (mb *migBench) lxcRound(s *migLXC, c migCase, record bool, m *migMeasure) error {
	b, ck := mb.b, mb.ck
	from, to := mb.lxc[s.at], mb.lxc[1-s.at]
	subject := &ckptSubject{who: "LXC", rt: from, run: ck.lxcRun, name: s.name}
	srcDir, dstDir := filepath.Join(from.path, s.name), filepath.Join(to.path, s.name)
	srcImages, dstImages := filepath.Join(b.tmp, "lxc-mig", hostNames[s.at]), filepath.Join(b.tmp, "lxc-mig", hostNames[1-s.at])
	for _, dir := range []string{srcImages, dstImages, dstDir} {
		if err := os.RemoveAll(dir); err != nil {
			return failedAt(stagePrepare, err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(srcImages), 0o711); err != nil {
		return failedAt(stagePrepare, err)
	}
	if err := ck.ensureStopped(subject); err != nil {
		return failedAt(stagePrepare, err)
	}
	if _, err := subject.run.timed(from.StartCmd(s.name)); err != nil {
		return failedAt(stagePrepare, err)
	}
	p, err := from.Procs(s.name)
	if err == nil && (p.Init == 0 || p.Monitor == 0) {
		err = fmt.Errorf("LXC container %s does not run after its start", s.name)
	}
	if err != nil {
		return failedAt(stagePrepare, err)
	}
	hog := ""
	if c.mib > 0 {
		if hog, err = ck.startMemhog(subject, p.Init, c.mib, "dirty"); err != nil {
			return failedAt(stagePrepare, err)
		}
	}
	b.sleep(b.opts.settle)

	steps := map[string]time.Duration{}
	step := func(name string, argv []string) error {
		d, err := subject.run.timed(argv)
		steps[name] += d
		return err
	}
	copies := lxcCopyCmds(srcDir, dstDir, srcImages, dstImages)
	began := time.Now()
	if err := step("rsync while it runs", copies[0]); err != nil {
		return failedAt(stageMigrate, err)
	}
	dumpStart := time.Now()
	if err := step("lxc-checkpoint -s", from.tool("lxc-checkpoint", "-s", "-D", srcImages, "-n", s.name, "-P", from.path)); err != nil {
		return &stageError{stageCheckpoint, err, criuLogErrors(srcImages, "dump.log")}
	}
	t0 := time.Now()
	if err := b.waitStopped(from, p); err != nil {
		return failedAt(stageCheckpoint, err)
	}
	steps["lxc-checkpoint -s"] += time.Since(t0)
	t0 = time.Now()
	for _, argv := range copies {
		if _, err := subject.run.timed(argv); err != nil {
			return failedAt(stageMigrate, err)
		}
	}
	if err := readableByAll(dstImages); err != nil {
		return failedAt(stageMigrate, err)
	}
	steps["copy after the dump"] = time.Since(t0)
	if err := step("lxc-checkpoint -r", to.tool("lxc-checkpoint", "-r", "-D", dstImages, "-n", s.name, "-P", to.path)); err != nil {
		return &stageError{stageRestore, err, criuLogErrors(dstImages, "restore.log")}
	}
	downtime := time.Since(dumpStart)
	if err := step("lxc-destroy the source", from.tool("lxc-destroy", "-n", s.name, "-P", from.path)); err != nil {
		return failedAt(stageMigrate, err)
	}
	total := time.Since(began)
	s.at = 1 - s.at
	subject.rt = to
	q, err := to.Procs(s.name)
	if err == nil && q.Init == 0 {
		err = fmt.Errorf("LXC container %s is not running after its restore in %s", s.name, mb.b.display(to.path))
	}
	if err == nil && hog != "" {
		if _, err = subject.run.output(to.ExecCmd(s.name, "kill", "-0", hog)...); err != nil {
			err = fmt.Errorf("the memory holder (pid %s inside) is gone after the restore: %w", hog, err)
		}
	}
	if err != nil {
		return failedAt(stageVerify, err)
	}
	if err := ck.ensureStopped(subject); err != nil {
		return failedAt(stageVerify, err)
	}
	os.RemoveAll(srcImages)
	os.RemoveAll(dstImages)
	if record {
		m.downtime.addDuration("LXC", downtime)
		m.total.addDuration("LXC", total)
		for name, d := range steps {
			m.phases["LXC: "+name] = append(m.phases["LXC: "+name], float64(d.Microseconds())/1000)
		}
	}
	return nil
}

func (mb *migBench) ensureLXCStopped(s *migLXC) {
	x := mb.lxc[s.at]
	mb.ck.ensureStopped(&ckptSubject{who: "LXC", rt: x, run: mb.ck.lxcRun, name: s.name})
}

// rows turns a case's measurements into the report's rows and notes.
func (mb *migBench) rows(c migCase, m *migMeasure) {
	mk := func(metric string, s samples, t *target) row {
		r := newRow(metric+", "+c.label, latency, s, t)
		if err := m.failed["lodge"]; err != nil {
			r.Unavailable = reason(err)
		}
		if err := m.failed["LXC"]; err != nil {
			r.LXCUnavailable = reason(err)
		}
		return r
	}
	mb.res.Rows = append(mb.res.Rows,
		mk("migration downtime", m.downtime, c.target),
		mk("migration total time", m.total, nil),
	)
	for _, who := range []string{"lodge", "LXC"} {
		if err := m.failed[who]; err != nil {
			mb.notes = append(mb.notes, fmt.Sprintf("%s, %s: not measured: %s", c.label, who, strings.ReplaceAll(err.Error(), "\n", "; ")))
		}
	}
	med := func(v []float64) float64 { return summarize(v).Median }
	phase := func(name string) float64 { return med(m.phases[name]) }
	if len(m.command) > 0 {
		mb.notes = append(mb.notes, fmt.Sprintf("%s, where lodge's time goes (medians of %d migrations, from `--format json`): downtime %.0f ms = "+
			"the dump's frozen part %.0f ms + the root filesystem's delta %.0f ms + the checkpoint's transfer %.0f ms (%.2f MiB) + the restore on the target %.0f ms. "+
			"The dump phase (from CRIU's start to its post-dump callback) took %.0f ms, so CRIU ran about %.0f ms before the freeze. "+
			"Before it, with the container running: preflight %.0f ms, the root filesystem %.0f ms; after it: the source removed %.0f ms. "+
			"Total %.0f ms, %.2f MiB sent; the `lodge migrate` command %.0f ms.",
			c.label, len(m.command), med(m.downtime["lodge"]), phase("lodge: dump, frozen"), phase("lodge: rootfs delta"),
			phase("lodge: checkpoint transfer"), med(m.images), phase("lodge: restore on the target"),
			phase("lodge: dump"), phase("lodge: dump")-phase("lodge: dump, frozen"),
			phase("lodge: preflight"), phase("lodge: rootfs"), phase("lodge: source removed"),
			med(m.total["lodge"]), med(m.sent), med(m.command)))
	}
	if lm := m.local; len(lm.restore["lodge"]) > 0 {
		phases := func(all map[string][]float64) map[string]float64 {
			out := map[string]float64{}
			for name, v := range all {
				out[name] = med(v)
			}
			return out
		}
		mb.notes = append(mb.notes, fmt.Sprintf("%s, the same container on one host, after each migration (medians of %d): `lodge checkpoint --stop` %.0f ms "+
			"(CRIU kept its tasks frozen %.0f ms; its dump log spans %.0f ms: %s) and `lodge restore` %.0f ms (CRIU's restore log spans %.0f ms: %s).",
			c.label, len(lm.restore["lodge"]), med(lm.dump["lodge"]), med(lm.frozen["lodge"]), med(lm.dumpSpan), formatPhases(phases(lm.dumpPhases)),
			med(lm.restore["lodge"]), med(lm.restoreSpan), formatPhases(phases(lm.restorePhases))))
	}
	if len(m.downtime["LXC"]) > 0 {
		mb.notes = append(mb.notes, fmt.Sprintf("%s, where LXC's time goes (medians of %d): rsync while it runs %.0f ms; then the downtime %.0f ms: "+
			"`lxc-checkpoint -s` until its processes are gone %.0f ms, the copy after it (rsync of the container, sed of its config, rsync of the images, chmod) %.0f ms, "+
			"`lxc-checkpoint -r` %.0f ms; then `lxc-destroy` of the source %.0f ms.",
			c.label, len(m.downtime["LXC"]), phase("LXC: rsync while it runs"), med(m.downtime["LXC"]), phase("LXC: lxc-checkpoint -s"),
			phase("LXC: copy after the dump"), phase("LXC: lxc-checkpoint -r"), phase("LXC: lxc-destroy the source")))
	}
}

func (mb *migBench) method(criu *migrate.CRIU, criuDir string) []string {
	b := mb.b
	lxc1, lxc2 := mb.lxc[0].path, mb.lxc[1].path
	images1, images2 := filepath.Join(b.tmp, "lxc-mig", "h1"), filepath.Join(b.tmp, "lxc-mig", "h2")
	withCRIU := "PATH=" + b.display(criuDir) + ":$PATH "
	cmds := []string{
		mb.display(0, b.lodge.argv("migrate", "mig1", "h2", "--format", "json")),
		mb.display(1, mb.hosts[1].argv("migrate", "mig1", "h1", "--format", "json")),
		mb.display(0, b.lodge.argv("migrate", "mig1", "h2", "--live", "--format", "json")) + "  # once, as the idle busybox's warm-up",
		mb.display(0, b.lodge.argv("exec", "mig1", "--", "sh", "-c", fmt.Sprintf("setsid %s 256 %s dirty >/dev/null 2>&1 </dev/null &", memhogPath, memhogReady))),
		mb.display(0, b.lodge.debianCreate("migdeb")),
		"# LXC, NAME from $TMP/lxc to $TMP/lxc-h2:",
		b.run.display(lxcCopyCmds(filepath.Join(lxc1, "NAME"), filepath.Join(lxc2, "NAME"), images1, images2)[0]) + "  # while it runs",
		withCRIU + b.run.display(b.lxc.tool("lxc-checkpoint", "-s", "-D", images1, "-n", "NAME", "-P", lxc1)),
	}
	for _, argv := range lxcCopyCmds(filepath.Join(lxc1, "NAME"), filepath.Join(lxc2, "NAME"), images1, images2) {
		cmds = append(cmds, b.run.display(argv))
	}
	cmds = append(cmds, "chmod -R a+rX "+b.display(images2),
		withCRIU+b.run.display(b.lxc.tool("lxc-checkpoint", "-r", "-D", images2, "-n", "NAME", "-P", lxc2)),
		b.run.display(b.lxc.tool("lxc-destroy", "-n", "NAME", "-P", lxc1)),
		"# and back: the same from $TMP/lxc-h2 to $TMP/lxc")
	mb.res.Commands = append(mb.res.Commands, cmds...)
	return []string{
		fmt.Sprintf("Two \"hosts\" on this machine, both with the same CRIU (%s). lodge: the benchmark's lodge root (h1) and a second root, `$TMP/lodge-h2` (h2), "+
			"whose host config has the same `[idmap]` pool and image cache (a migration keeps the container's id range, which must be free in the target's pool), "+
			"its own cgroup base below the benchmark's cgroup and its own network tag:", criu),
		"```\n" + strings.TrimSpace(mb.hosts[1].configText) + "\n```",
		"Each root is served by `lodge serve --listen 127.0.0.1:0` (started by the benchmark, stopped by its pid at the end) and trusts the other " +
			"(`lodge trust add` there, `lodge remote add` here): h1 knows h2 as `h2` and h2 knows h1 as `h1`. The containers have no NIC: both roots " +
			"are on one machine (docs/migration.md: NICs across two roots of one machine are not built), and a container without a NIC needs no " +
			"network namespace per host. lodge's containers are on the root's default storage (overlay here), so the image's layers are on both hosts " +
			"and a migration sends the container's upper layer.",
		"LXC: two lxcpaths, `$TMP/lxc` and `$TMP/lxc-h2`, the same CRIU (`lxc-checkpoint` runs the `criu` on its PATH: a link to lodge's CRIU first). " +
			"LXC has no migration of its own (LXD and Incus build theirs on top of it); the way it offers is `lxc-checkpoint -s` (dump and stop), copy the " +
			"container and its images to the other host as an operator would, `lxc-checkpoint -r` there. The copy is done as lodge does it, to keep the freeze " +
			"short: the container's directory (rootfs and config) is rsynced while it runs, and again after the dump (the changes), the config's paths are " +
			"changed to the target's with sed, the images are rsynced, and made readable by all (LXC's restore needs it: the checkpoint section says why). " +
			"LXC's containers are the checkpoint section's (busybox made checkpointable and shifted, Debian on a copy of lodge's Debian files).",
		fmt.Sprintf("Each case migrates back and forth, h1 -> h2 -> h1 ..., the runtimes in turn: 1 untimed round each, then %d rounds. "+
			"lodge's container keeps running across its migrations (it is booted once: the busybox, Debian until `systemctl is-system-running` says `running`); "+
			"each round is one `lodge migrate NAME REMOTE --format json`, and after it, untimed, the container runs on the target (Debian: `running`, no failed unit; "+
			"busy: the memory holder lives) and is gone from the source. **Reported**: lodge's own downtime (`downtime_ns`: from the moment its freezer "+
			"cgroup is seen frozen during the dump to the end of the restore on the target) and total (`total_ns`: from the command's start to the source "+
			"removed). LXC's container is booted afresh every round (a restored LXC container is not checkpointed again, as the checkpoint section found) "+
			"and then, **timed**: the rsync while it runs; downtime from the start of `lxc-checkpoint -s` to the end of `lxc-checkpoint -r` (including the "+
			"wait until its processes are gone and the copy); total from the first rsync to the end of `lxc-destroy` of the source.", b.opts.migRounds),
		"Where lodge's downtime goes: the phases of `--format json` (the dump, whose frozen part is the downtime less the three steps after it; " +
			"the root filesystem's delta; the checkpoint's transfer; the restore on the target). After each timed migration (untimed for the migration, " +
			"timed for itself), the same container is checkpointed with `lodge checkpoint --stop` and restored with `lodge restore` on the host it " +
			"arrived at: the same dump and restore without a second host, in the same conditions, with CRIU's logs read as in the checkpoint section.",
		"The busy case runs `lodge-memhog 256 READY dirty` in the container: it touches 256 MiB and then keeps writing a byte of every page, a pass every 10 ms, " +
			"so its memory is always dirty (stop-and-copy dumps all of it either way; pre-copy would have to send it again and again). " +
			"`--live`: this machine's kernel lacks soft-dirty tracking (pre-copy) and does not give userfaultfd to the container's user namespace " +
			"(post-copy), so the only mode is stop-and-copy; lodge says so (below), and there are no `--live` rows.",
	}
}
