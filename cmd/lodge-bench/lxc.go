package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// lxcRuntime drives Debian's LXC tools: unprivileged busybox containers made
// by `lxc-create -t busybox`, run by root from a private lxcpath.
type lxcRuntime struct {
	path        string // the private lxcpath (-P)
	createConf  string // the file given to lxc-create -f
	createText  string
	extraConfig []string // lines appended to each container's config after lxc-create
	cgroupDir   string
	uids, gids  subIDGrant
	tools       map[string]string // lxc-start etc. by name, resolved once
	run         *runner
	created     []string
	seedPath    string // the lxcpath of the seed that CreateCopy copies
	seedMade    bool   // the seed exists
}

// lxcSeedName is the busybox container CreateCopy copies; it lives in its
// own lxcpath, so that `lxc-ls -P path` does not list it, and is never
// started.
const lxcSeedName = "seed"

// lxcSeccompProfile is the seccomp policy LXC's common.conf gives containers.
const lxcSeccompProfile = "/usr/share/lxc/config/common.seccomp"

var lxcTools = []string{"lxc-create", "lxc-start", "lxc-stop", "lxc-attach", "lxc-info", "lxc-destroy", "lxc-copy", "lxc-snapshot", "lxc-freeze", "lxc-unfreeze", "lxc-checkpoint", "lxc-ls", "newuidmap", "newgidmap"}

// newLXC prepares the lxcpath, root's subordinate ids and the configuration
// lines; the caller undoes the id grants (undoIDs) when done.
func newLXC(dir, cgroupDir string, run *runner) (*lxcRuntime, error) {
	x := &lxcRuntime{path: filepath.Join(dir, "lxc"), seedPath: filepath.Join(dir, "lxc-seed"), cgroupDir: cgroupDir,
		tools: map[string]string{}, run: run}
	for _, tool := range lxcTools {
		p, err := exec.LookPath(tool)
		if err != nil {
			return nil, fmt.Errorf("%s not found: LXC and uidmap are needed for the comparison (make bench installs them: apt-get install lxc uidmap)", tool)
		}
		x.tools[tool] = p
	}
	// The container's root (an unprivileged host uid) must be able to reach
	// the rootfs: lxc-start fails with "Could not access DIR. Please grant
	// it x access" otherwise.
	if err := os.Chmod(dir, 0o711); err != nil {
		return nil, err
	}
	if err := os.Mkdir(x.path, 0o711); err != nil {
		return nil, err
	}
	var err error
	if x.uids, err = ensureRootRange("/etc/subuid"); err != nil {
		return nil, err
	}
	if x.gids, err = ensureRootRange("/etc/subgid"); err != nil {
		x.undoIDs()
		return nil, err
	}
	x.createConf = filepath.Join(dir, "lxc-create.conf")
	x.createText = "lxc.net.0.type = empty\n"
	if err := os.WriteFile(x.createConf, []byte(x.createText), 0o644); err != nil {
		x.undoIDs()
		return nil, err
	}
	x.extraConfig = []string{
		fmt.Sprintf("lxc.idmap = u 0 %d %d", x.uids.Range.Start, x.uids.Range.Count),
		fmt.Sprintf("lxc.idmap = g 0 %d %d", x.gids.Range.Start, x.gids.Range.Count),
		"lxc.rootfs.options = idmap=container",
		"lxc.cgroup.relative = 1",
		"lxc.cgroup.dir = " + cgroupDir,
		// lodge loads a seccomp filter into every container; LXC's busybox
		// template loads none unless asked, so ask for LXC's default one.
		"lxc.seccomp.profile = " + lxcSeccompProfile,
	}
	if _, err := os.Stat(lxcSeccompProfile); err != nil {
		x.undoIDs()
		return nil, fmt.Errorf("LXC's default seccomp profile: %w (it comes with Debian's lxc package)", err)
	}
	return x, nil
}

// undoIDs removes the subordinate id ranges newLXC added, if any.
func (x *lxcRuntime) undoIDs() error {
	return errors.Join(x.uids.undo(), x.gids.undo())
}

func (x *lxcRuntime) Name() string           { return "LXC" }
func (x *lxcRuntime) Container(i int) string { return fmt.Sprintf("c%d", i) }

func (x *lxcRuntime) tool(name string, args ...string) []string {
	return append([]string{x.tools[name]}, args...)
}

func (x *lxcRuntime) StartCmd(name string) []string {
	return x.tool("lxc-start", "-n", name, "-P", x.path)
}

func (x *lxcRuntime) StopCmd(name string, force bool) []string {
	if force {
		return x.tool("lxc-stop", "-k", "-n", name, "-P", x.path)
	}
	return x.tool("lxc-stop", "-n", name, "-P", x.path)
}

func (x *lxcRuntime) ExecCmd(name string, command ...string) []string {
	return append(x.tool("lxc-attach", "-n", name, "-P", x.path, "--"), command...)
}

func (x *lxcRuntime) FreezeCmd(name string) []string {
	return x.tool("lxc-freeze", "-n", name, "-P", x.path)
}

func (x *lxcRuntime) UnfreezeCmd(name string) []string {
	return x.tool("lxc-unfreeze", "-n", name, "-P", x.path)
}

func (x *lxcRuntime) VersionCmd() []string { return x.tool("lxc-attach", "--version") }

func (x *lxcRuntime) CreateCmd(name string) []string {
	return x.createCmdIn(x.path, name)
}

// createCmdIn runs the busybox template for container name in lxcpath path.
func (x *lxcRuntime) createCmdIn(path, name string) []string {
	return x.tool("lxc-create", "-n", name, "-P", path, "-t", "busybox", "-f", x.createConf)
}

// Create runs the busybox template as host root, so the rootfs keeps ids
// 0..65535 on disk like lodge's, then makes the container unprivileged: an
// id map, an idmapped rootfs mount, cgroups under our own.
func (x *lxcRuntime) Create(name string) error {
	x.created = append(x.created, name)
	if _, err := x.run.output(x.CreateCmd(name)...); err != nil {
		return err
	}
	return x.makeUnprivileged(name)
}

// CopyCmd makes container name a full copy of the seed, in the lxcpath:
// the dir backend, so its rootfs is an rsync of the seed's; lxc-copy gives
// it its own lxc.uts.name and rootfs path (the seed has no network, so no
// hwaddr to change).
func (x *lxcRuntime) CopyCmd(name string) []string {
	return x.tool("lxc-copy", "-n", lxcSeedName, "-P", x.seedPath, "-N", name, "-p", x.path, "-B", "dir")
}

// CreateCopy makes container name as Create does, but copies it with
// lxc-copy from a seed that `lxc-create -t busybox` made once: the template
// takes seconds per container (it links each busybox applet with its own
// `ln`), a copy of its 2 MB rootfs a fraction of one. The seed is copied
// before it is made unprivileged (lxc-copy of a container with an id map
// chowns the copy's directory to the mapped root), and each copy is then
// made unprivileged as Create makes its container, so a copy's config is
// an lxc-create'd one's but for its name and rootfs path (and lxc-copy's
// rewriting drops blank lines).
func (x *lxcRuntime) CreateCopy(name string) error {
	if err := x.ensureSeed(); err != nil {
		return err
	}
	x.created = append(x.created, name)
	if _, err := x.run.output(x.CopyCmd(name)...); err != nil {
		return err
	}
	return x.makeUnprivileged(name)
}

// ensureSeed creates the seed on first use.
func (x *lxcRuntime) ensureSeed() error {
	if x.seedMade {
		return nil
	}
	if err := os.Mkdir(x.seedPath, 0o711); err != nil {
		return fmt.Errorf("the lxcpath of the busybox seed: %w", err)
	}
	x.seedMade = true // from here on, cleanup destroys it
	if _, err := x.run.output(x.createCmdIn(x.seedPath, lxcSeedName)...); err != nil {
		return fmt.Errorf("create the busybox seed that LXC containers are copied from: %w", err)
	}
	return nil
}

// makeUnprivileged appends the id map, the idmapped rootfs and the cgroup
// placement to container name's config.
func (x *lxcRuntime) makeUnprivileged(name string) error {
	return x.appendConfig(name, "unprivileged, idmapped rootfs, cgroups under the caller's", x.extraConfig)
}

// appendConfig appends lines, under a comment saying why, to container
// name's config.
func (x *lxcRuntime) appendConfig(name, why string, lines []string) error {
	f, err := os.OpenFile(filepath.Join(x.path, name, "config"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(f, "\n# lodge-bench: %s\n%s\n", why, strings.Join(lines, "\n"))
	return errors.Join(err, f.Close())
}

func (x *lxcRuntime) ProcsCmd(name string) []string {
	return x.tool("lxc-info", "-n", name, "-P", x.path, "-p", "-H")
}

func (x *lxcRuntime) Procs(name string) (procs, error) {
	out, err := x.run.output(x.ProcsCmd(name)...)
	if err != nil {
		return procs{}, err
	}
	out = strings.TrimSpace(out)
	if out == "" {
		return procs{}, nil
	}
	init, err := strconv.Atoi(out)
	if err != nil {
		return procs{}, fmt.Errorf("lxc-info -p: %q", out)
	}
	ppid, err := parentPID(init)
	if err != nil {
		return procs{}, err
	}
	return procs{Init: init, Monitor: ppid}, nil
}

func (x *lxcRuntime) Destroy(name string) error {
	x.run.output(x.StopCmd(name, true)...) // fails when not running
	_, err := x.run.output(x.tool("lxc-destroy", "-n", name, "-P", x.path)...)
	return err
}

// cleanup destroys every container the benchmark created.
func (x *lxcRuntime) cleanup() error {
	var errs []error
	for _, name := range x.created {
		if _, err := os.Stat(filepath.Join(x.path, name)); err != nil {
			continue
		}
		errs = append(errs, x.Destroy(name))
	}
	if x.seedMade {
		if _, err := os.Stat(filepath.Join(x.seedPath, lxcSeedName)); err == nil {
			_, err = x.run.output(x.tool("lxc-destroy", "-n", lxcSeedName, "-P", x.seedPath)...)
			errs = append(errs, err)
		}
		errs = append(errs, os.Remove(x.seedPath))
	}
	return errors.Join(errs...)
}

// startDebug starts a container with a debug log, to explain a failure.
func (x *lxcRuntime) startDebug(name string) string {
	log := filepath.Join(x.path, name+"-debug.log")
	_, err := x.run.output(x.tool("lxc-start", "-n", name, "-P", x.path, "-l", "DEBUG", "-o", log)...)
	if err == nil {
		x.run.output(x.StopCmd(name, true)...)
		return "it started with a debug log, so the failure is intermittent"
	}
	data, _ := os.ReadFile(log)
	var lines []string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, "ERROR") || strings.Contains(l, "WARN") {
			lines = append(lines, l)
		}
	}
	return "lxc-start debug log:\n" + lastLines(strings.Join(lines, "\n"), 15)
}

// logErrors runs an LXC tool's argv again with an error log and returns
// what the log says (LXC's tools print little on stderr by default).
func (x *lxcRuntime) logErrors(argv []string, log string) string {
	os.Remove(log)
	x.run.output(append(slices.Clone(argv), "-l", "ERROR", "-o", log)...) // fails again
	data, _ := os.ReadFile(log)
	var msgs []string
	for _, l := range strings.Split(string(data), "\n") {
		// Keep the errors proper, not the advice around them.
		if i := strings.LastIndex(l, " - "); i >= 0 && strings.Contains(strings.ToLower(l[i:]), "error") {
			msgs = append(msgs, strings.TrimSpace(l[i+3:]))
		}
	}
	if len(msgs) == 0 {
		return "nothing"
	}
	return strings.Join(msgs, "; ")
}

// version is `lxc-start --version` and the Debian package version.
func (x *lxcRuntime) version() string {
	v, err := x.run.output(x.tools["lxc-start"], "--version")
	if err != nil {
		return "unknown"
	}
	v = trimOutput(v)
	if pkg, err := x.run.output("dpkg-query", "-W", "-f", "${Version}", "lxc"); err == nil {
		v += " (Debian package lxc " + trimOutput(pkg) + ")"
	}
	return v
}

// hostNotes says which host features that change LXC's work at start are
// present: AppArmor, lxcfs, the lxc-net bridge.
func (x *lxcRuntime) hostNotes() string {
	var notes []string
	if data, err := os.ReadFile("/sys/module/apparmor/parameters/enabled"); err == nil && strings.TrimSpace(string(data)) == "Y" {
		notes = append(notes, "AppArmor is enabled; the template config sets no profile, so LXC applies its default.")
	} else {
		notes = append(notes, "AppArmor is not enabled in this kernel, so no profile is loaded.")
	}
	if _, err := os.Stat("/var/lib/lxcfs"); err == nil {
		notes = append(notes, "lxcfs is installed, so LXC's lxcfs hook runs at start and stop.")
	} else {
		notes = append(notes, "lxcfs is not installed, so LXC's lxcfs mount hook does not run.")
	}
	if _, err := os.Stat("/sys/class/net/lxcbr0"); err == nil {
		notes = append(notes, "An lxcbr0 bridge exists, but the containers do not use it (`lxc.net.0.type = empty`).")
	} else {
		notes = append(notes, "lxc-net is not running (no lxcbr0 bridge, no NAT) and the containers have no network.")
	}
	return strings.Join(notes, " ")
}
