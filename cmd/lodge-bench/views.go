package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"lodge/lxcfs/server"
	"lodge/storage"

	"golang.org/x/sys/unix"
)

// The views group compares the /proc views: lodge's server (lodge lxcfs)
// and lxcfs (Debian's package) serving an LXC container, read from inside
// each container by procread, then the servers' memory with many containers.

func viewsGroup() group {
	return group{Name: "views", Title: "/proc views: lodge lxcfs and lxcfs", Run: runViews}
}

var (
	viewFiles     = []string{"/proc/meminfo", "/proc/cpuinfo", "/proc/stat"}
	viewReaders   = []int{1, 8}
	targetFaster5 = &target{Text: "≥ 5x faster", MinRatio: 5}
)

// viewReads is how often each reader reads the file per sample.
const viewReads = 1000

// Uncached reads: each after a pause longer than lodge's server keeps a
// render (server.CacheTTL), so that every read renders the file anew, as
// the first read by top or free after a while does. lxcfs renders every
// read anyway; it gets the same pauses, which leave both servers' CPU
// caches equally cold.
const viewMissReads = 10

var viewMissPause = server.CacheTTL + 50*time.Millisecond

// readSpec is one way of reading a view: readers at once, reads each,
// pause before each read.
type readSpec struct {
	file           string
	readers, reads int
	pause          time.Duration
}

// viewSpecs lists the read rows in the order of the table: each file with
// one reader, cached then uncached, then with several readers.
func viewSpecs() []readSpec {
	var specs []readSpec
	for _, readers := range viewReaders {
		for _, file := range viewFiles {
			specs = append(specs, readSpec{file: file, readers: readers, reads: viewReads})
			if readers == 1 {
				specs = append(specs, readSpec{file: file, readers: 1, reads: viewMissReads, pause: viewMissPause})
			}
		}
	}
	return specs
}

// args is procread's command line.
func (r readSpec) args(reader string) []string {
	args := []string{reader, r.file, strconv.Itoa(r.reads), strconv.Itoa(r.readers)}
	if r.pause > 0 {
		args = append(args, strconv.FormatInt(r.pause.Milliseconds(), 10))
	}
	return args
}

// metric names the row: "read /proc/stat, 8 readers", "read /proc/stat,
// 1 reader, uncached".
func (r readSpec) metric() string {
	m := fmt.Sprintf("read %s, %d reader", r.file, r.readers)
	if r.readers > 1 {
		m += "s"
	}
	if r.pause > 0 {
		m += ", uncached"
	}
	return m
}

// lxcViewsName is the LXC container that gets lxcfs's files.
const lxcViewsName = "cv1"

func runViews(b *bench) (*groupResult, error) {
	res := &groupResult{Method: viewsMethod(b.opts.viewsK)}
	lx, err := b.startLXCFS()
	if err != nil {
		return res, err
	}
	b.addCleanup(lx.stop)
	reader := "/usr/local/bin/procread"
	lodgeName := b.lodge.Container(1)
	if err := b.installLodgeReader(lodgeName, reader); err != nil {
		return res, err
	}
	if err := b.createLXCWithViews(lx, lxcViewsName); err != nil {
		return res, err
	}
	if err := b.installReader(filepath.Join(b.lxc.path, lxcViewsName, "rootfs"), reader); err != nil {
		return res, err
	}
	names := map[string]string{"lodge": lodgeName, "LXC": lxcViewsName}
	for _, rt := range b.runtimes {
		if err := b.ensureStopped(rt, names[rt.Name()]); err != nil {
			return res, err
		}
		if _, err := b.run.timed(rt.StartCmd(names[rt.Name()])); err != nil {
			return res, err
		}
		if err := b.checkServed(rt, names[rt.Name()]); err != nil {
			return res, err
		}
	}
	listed := map[bool]bool{} // commands shown, for cached and uncached reads
	for _, spec := range viewSpecs() {
		if !listed[spec.pause > 0] {
			listed[spec.pause > 0] = true
			for _, rt := range b.runtimes {
				res.Commands = append(res.Commands, b.commands(rt.ExecCmd(names[rt.Name()], spec.args(reader)...))...)
			}
		}
		row, err := b.measureReads(names, reader, spec)
		if err != nil {
			return res, err
		}
		res.Rows = append(res.Rows, row)
	}
	if host, err := b.run.output(b.opts.procread, "/proc/meminfo", strconv.Itoa(viewReads), "1"); err == nil {
		res.Notes = append(res.Notes, fmt.Sprintf("The host's own /proc/meminfo, read the same way on the host: %s µs per read.", strings.TrimSpace(host)))
	}
	for _, rt := range b.runtimes {
		b.ensureStopped(rt, names[rt.Name()])
	}
	mem, err := b.viewsMemory(lx)
	res.Rows = append(res.Rows, mem...)
	return res, err
}

// installLodgeReader copies procread into lodge's stopped container name
// through the root its storage backend shows the host (an overlay
// container's rootfs directory holds its layers, not its files).
func (b *bench) installLodgeReader(name, path string) error {
	for _, rt := range b.runtimes {
		if rt.Name() == "lodge" {
			if err := b.ensureStopped(rt, name); err != nil {
				return err
			}
		}
	}
	view, err := storage.OpenView(b.lodge.root, filepath.Join(b.lodge.root, "containers", name), true)
	if err != nil {
		return fmt.Errorf("install procread in %s: %w", name, err)
	}
	defer view.Close()
	return b.installReader(view.Dir, path)
}

// installReader copies procread into a container's rootfs (ids on disk are
// the container's own: root is 0).
func (b *bench) installReader(rootfs, path string) error {
	data, err := os.ReadFile(b.opts.procread)
	if err != nil {
		return fmt.Errorf("procread: %w (make bench builds it)", err)
	}
	dst := filepath.Join(rootfs, path)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o755)
}

// checkServed confirms that /proc/meminfo inside the container is a FUSE
// file (a view), not the kernel's.
func (b *bench) checkServed(rt runtime, name string) error {
	out, err := b.run.output(rt.ExecCmd(name, "grep", " /proc/meminfo ", "/proc/self/mountinfo")...)
	if err != nil || !strings.Contains(out, "fuse") {
		return fmt.Errorf("%s container %s: /proc/meminfo is not served by a FUSE view (mountinfo: %q, %v)", rt.Name(), name, strings.TrimSpace(out), err)
	}
	return nil
}

// measureReads runs procread in both containers in turn, rounds times.
func (b *bench) measureReads(names map[string]string, reader string, spec readSpec) (row, error) {
	s := samples{}
	args := spec.args(reader)
	err := inTurn(b, b.opts.viewsRounds, b.runtimes, func(_ int, rt runtime) error {
		out, err := b.run.output(rt.ExecCmd(names[rt.Name()], args...)...)
		if err != nil {
			return err
		}
		us, err := strconv.ParseFloat(strings.TrimSpace(out), 64)
		if err != nil {
			return fmt.Errorf("procread printed %q", out)
		}
		s.add(rt.Name(), us/1000) // the report's latency unit is ms
		return nil
	})
	return newRow(spec.metric(), latency, s, targetFaster5), err
}

// viewsMemory starts K containers of each runtime that read the views,
// then measures the servers' memory.
func (b *bench) viewsMemory(lx *lxcfsServer) ([]row, error) {
	k := b.opts.viewsK
	b.logf("views: starting %d containers per runtime", k)
	read := []string{"cat", "/proc/meminfo", "/proc/cpuinfo", "/proc/stat", "/proc/uptime", "/proc/loadavg"}
	pss, rss := samples{}, samples{}
	for _, rt := range b.runtimes {
		var names []string
		for i := 1; i <= k; i++ {
			name := fmt.Sprintf("%s%d", map[string]string{"lodge": "v", "LXC": "cv"}[rt.Name()], i+1)
			var err error
			if rt.Name() == "lodge" {
				err = b.lodge.Create(name)
			} else {
				err = b.createLXCWithViews(lx, name)
			}
			if err != nil {
				return nil, err
			}
			names = append(names, name)
		}
		for _, name := range names {
			if _, err := b.run.timed(rt.StartCmd(name)); err != nil {
				return nil, err
			}
			if _, err := b.run.output(rt.ExecCmd(name, read...)...); err != nil {
				return nil, err
			}
		}
		pids, err := b.viewsServerPIDs(rt, lx)
		if err != nil {
			return nil, err
		}
		var m processMemory
		for _, pid := range pids {
			pm, err := readProcessMemory(pid)
			if err != nil {
				return nil, err
			}
			m.Pss, m.Rss = m.Pss+pm.Pss, m.Rss+pm.Rss
		}
		pss.add(rt.Name(), float64(m.Pss)/1024)
		rss.add(rt.Name(), float64(m.Rss)/1024)
		for _, name := range names {
			if err := b.ensureStopped(rt, name); err != nil {
				return nil, err
			}
		}
	}
	return []row{
		newRow(fmt.Sprintf("server PSS with %d containers", k), memory, pss, nil),
		newRow(fmt.Sprintf("server RSS with %d containers", k), memory, rss, nil),
	}, nil
}

// viewsServerPIDs is lodge's server and its supervisor, or lxcfs.
func (b *bench) viewsServerPIDs(rt runtime, lx *lxcfsServer) ([]int, error) {
	if rt.Name() != "lodge" {
		return []int{lx.cmd.Process.Pid}, nil
	}
	out, err := b.run.output(b.lodge.argv("lxcfs", "status", "--format", "json")...)
	if err != nil {
		return nil, err
	}
	var status struct {
		Server     int `json:"server_pid"`
		Supervisor int `json:"supervisor_pid"`
	}
	if err := json.Unmarshal([]byte(out), &status); err != nil || status.Server == 0 {
		return nil, fmt.Errorf("lodge lxcfs status: no server (%v): %s", err, out)
	}
	pids := []int{status.Server}
	if status.Supervisor != 0 {
		pids = append(pids, status.Supervisor)
	}
	return pids, nil
}

// lxcfsServer is an lxcfs the benchmark runs on a private mount point.
type lxcfsServer struct {
	mnt string
	cmd *exec.Cmd
}

func (b *bench) startLXCFS() (*lxcfsServer, error) {
	bin, err := exec.LookPath("lxcfs")
	if err != nil {
		return nil, errors.New("lxcfs not found: the views comparison needs Debian's lxcfs package (make bench installs it)")
	}
	lx := &lxcfsServer{mnt: filepath.Join(b.tmp, "lxcfs")}
	if err := os.Mkdir(lx.mnt, 0o755); err != nil {
		return nil, err
	}
	// -f: in the foreground, our child; the pid file in our temp dir, not
	// /run/lxcfs.pid, so a system lxcfs is left alone.
	lx.cmd = exec.Command(bin, "-f", "-p", filepath.Join(b.tmp, "lxcfs.pid"), lx.mnt)
	lx.cmd.Stdout, lx.cmd.Stderr = b.run.devNull, b.run.devNull
	if err := lx.cmd.Start(); err != nil {
		return nil, err
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		var st unix.Statfs_t
		if unix.Statfs(filepath.Join(lx.mnt, "proc"), &st) == nil && st.Type == unix.FUSE_SUPER_MAGIC {
			return lx, nil
		}
		if time.Now().After(deadline) {
			lx.stop()
			return nil, errors.New("lxcfs did not mount within 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop ends the lxcfs this benchmark started and unmounts it.
func (lx *lxcfsServer) stop() error {
	if lx.cmd.Process != nil {
		lx.cmd.Process.Signal(unix.SIGTERM)
		lx.cmd.Wait()
	}
	unix.Unmount(lx.mnt, unix.MNT_DETACH)
	return nil
}

// createLXCWithViews makes an LXC busybox container that binds lxcfs's
// files over its own, as LXC's lxcfs mount hook does.
func (b *bench) createLXCWithViews(lx *lxcfsServer, name string) error {
	if err := b.lxc.Create(name); err != nil {
		return err
	}
	return b.bindLXCViews(lx, name)
}

// bindLXCViews makes LXC container name bind lxcfs's files over its own.
func (b *bench) bindLXCViews(lx *lxcfsServer, name string) error {
	var lines []string
	for _, f := range []string{"meminfo", "cpuinfo", "stat", "uptime", "loadavg", "swaps", "diskstats"} {
		lines = append(lines, fmt.Sprintf("lxc.mount.entry = %s/proc/%s proc/%s none bind,optional 0 0", lx.mnt, f, f))
	}
	lines = append(lines, fmt.Sprintf("lxc.mount.entry = %s/sys/devices/system/cpu sys/devices/system/cpu none bind,optional 0 0", lx.mnt))
	return b.lxc.appendConfig(name, "lxcfs's files, as /usr/share/lxcfs/lxc.mount.hook binds them", lines)
}

func viewsMethod(k int) []string {
	return []string{
		fmt.Sprintf("**Read latency.** procread (`cmd/lodge-bench/procread`, a static binary copied into both containers) opens, reads to the end "+
			"and closes the file %d times in each of N threads at once and prints the mean time per read; it runs inside lodge's busybox "+
			"container (views by lodge's server) and inside an LXC busybox container whose /proc files and /sys/devices/system/cpu are "+
			"bound from an lxcfs that the benchmark runs on a private mount point (as LXC's lxcfs hook binds them from /var/lib/lxcfs). "+
			"Both containers are checked to read a FUSE file. The runtimes alternate; each row is the median of the samples.", viewReads),
		fmt.Sprintf("lodge's server renders a file for a container at most every %v and serves the cached text in between, so a reader in a "+
			"tight loop mostly measures the FUSE round trips; lxcfs renders on every open.", server.CacheTTL) + " One read through lodge's server is five " +
			"FUSE requests: GETATTR (the caller's size, which sendfile needs), OPEN, READ, READ at the end of the file, RELEASE " +
			"(LOOKUP is cached and FLUSH switched off). A round trip costs 15-20 µs on this 2-CPU VM, mostly waking threads across " +
			"CPUs, which puts a floor of about 80 µs under lodge's latency whatever the server does; lxcfs pays the same round trips " +
			"plus its rendering, hence ratios near 1.5-2x rather than 5x.",
		fmt.Sprintf("The **uncached** rows time reads that miss lodge's cache, as the first read by free or top after a while does: "+
			"%d reads per sample, each after an untimed pause of %v (procread's PAUSE_MS), longer than the cache interval, so that "+
			"every read renders the file anew. lxcfs gets the same pauses, which leave both servers' CPU caches equally cold: "+
			"these reads are slower for both than reads in a loop.", viewMissReads, viewMissPause),
		fmt.Sprintf("**Memory.** %d more containers per runtime are created and started, and each reads meminfo, cpuinfo, stat, uptime "+
			"and loadavg once; then the proportional (PSS) and resident (RSS) memory of lodge's server plus its supervisor, and of lxcfs, "+
			"are read from /proc/PID/smaps_rollup.", k),
	}
}
