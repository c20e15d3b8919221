// Package tests drives the built lodge binary as a user would, as root, against
// the real kernel: namespaces, cgroups, idmapped mounts, busybox init.
package tests

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"lodge/config"
	"lodge/internal/cgroup"
	"lodge/internal/testreq"
	"lodge/storage"
)

// binDir holds lodge and lodge-helper, built once by TestMain.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "lodge-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755) // TestNotRoot runs lodge as nobody
	if err := buildBinaries(dir); err != nil {
		fmt.Fprintln(os.Stderr, "build lodge:", err)
		return 1
	}
	binDir = dir
	code := m.Run()
	if reports := sanitizerReports(); reports != "" {
		fmt.Fprintln(os.Stderr, "FAIL: lodge-helper's sanitizers reported errors:\n"+reports)
		return 1
	}
	return code
}

// sanitizerReports returns the reports a sanitized helper ($LODGE_TEST_HELPER,
// built by make test-sanitize) wrote to $LODGE_TEST_SANITIZER_REPORTS.
func sanitizerReports() string {
	dir := os.Getenv("LODGE_TEST_SANITIZER_REPORTS")
	if dir == "" {
		return ""
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err.Error()
	}
	var all strings.Builder
	for _, entry := range entries {
		data, _ := os.ReadFile(filepath.Join(dir, entry.Name()))
		fmt.Fprintf(&all, "--- %s\n%s\n", entry.Name(), data)
	}
	return all.String()
}

// collectSanitizerReports looks through the env's logs (monitor.log of each
// container, the views server's log) for sanitizer reports before cleanup
// deletes them: UBSan, in GCC 12's combined runtime, writes its reports to
// stderr whatever log_path says.
func (e *env) collectSanitizerReports() {
	if os.Getenv("LODGE_TEST_SANITIZER_REPORTS") == "" {
		return
	}
	filepath.WalkDir(e.root, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".log") {
			data, _ := os.ReadFile(path)
			noteSanitizerReport(path, string(data))
		}
		return nil
	})
}

// noteSanitizerReport saves text into $LODGE_TEST_SANITIZER_REPORTS if it
// holds a sanitizer's report.
func noteSanitizerReport(source, text string) {
	dir := os.Getenv("LODGE_TEST_SANITIZER_REPORTS")
	if dir == "" || (!strings.Contains(text, "runtime error: ") && !strings.Contains(text, "Sanitizer")) {
		return
	}
	f, err := os.CreateTemp(dir, "found-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "in %s:\n%s\n", source, text)
}

// buildBinaries builds lodge, its views server and its C helper as the
// Makefile does. $LODGE_TEST_HELPER names a helper built elsewhere to use
// instead (make test-sanitize's).
func buildBinaries(dir string) error {
	goBuild := exec.Command("go", "build", "-o", dir, "lodge/cmd/lodge", "lodge/manager/monitor/lodge-monitor", "lodge/cmd/lodge-lxcfs")
	goBuild.Env = append(os.Environ(), "CGO_ENABLED=0")
	if helper := os.Getenv("LODGE_TEST_HELPER"); helper != "" {
		copyHelper := exec.Command("cp", helper, filepath.Join(dir, "lodge-helper"))
		return runAll(goBuild, copyHelper)
	}
	cc := "cc"
	if path, err := exec.LookPath("musl-gcc"); err == nil {
		cc = path
	}
	sources, _ := filepath.Glob("../cmd/lodge-helper/*.c")
	ccArgs := append([]string{"-static", "-O2", "-Wall", "-Werror", "-o", filepath.Join(dir, "lodge-helper")}, sources...)
	return runAll(goBuild, exec.Command(cc, ccArgs...))
}

func runAll(cmds ...*exec.Cmd) error {
	for _, cmd := range cmds {
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
		}
	}
	return nil
}

// requireRoot skips, loudly, a test that needs root.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		testreq.Skip(t, "root", "needs root (namespaces, cgroups, idmapped mounts); run: sudo make test")
	}
}

// env is one lodge root with its own host config: its own cgroup base (below
// the test's own cgroup on every hierarchy) and id range, so tests never
// collide with each other or a real lodge.
type env struct {
	t          *testing.T
	root       string
	hostConfig string
	cgroupName string
	extraEnv   []string
	bin        string // the lodge binary; binDir/lodge unless a test changes it
	firstID    int    // first host id of the env's id pool
	imageDir   string // the image cache the host config names
	storage    string // storage.backend in the host config ("" = auto)
	netTag     string // network.tag in the host config: the env's networks' prefix in the kernel
}

var envCount atomic.Int32

// sharedImages is the image cache all test roots share and later runs reuse:
// the Debian image is built once per machine (a minute), not once per test.
const sharedImages = "/var/cache/lodge/test-images"

func newEnv(t *testing.T) *env {
	t.Helper()
	requireRoot(t)
	e := &env{t: t, root: t.TempDir(), cgroupName: "lodge-test-" + randomHex(4), bin: filepath.Join(binDir, "lodge"), netTag: "t" + randomHex(2)}
	// Spread test roots over distinct id ranges, far from lodge's default pool.
	e.firstID = 100_000_000 + int(envCount.Add(1))*64*65536 + os.Getpid()%8*8*64*65536
	e.hostConfig = filepath.Join(t.TempDir(), "lodge.toml")
	// Networks' dnsmasq drops to its own user and must reach ROOT/networks
	// (as it reaches /var/lib/lodge): the temporary directories are 0700.
	os.Chmod(e.root, 0o711)
	os.Chmod(filepath.Dir(e.root), 0o711)
	e.setImages(sharedImages)
	t.Cleanup(e.cleanup)
	return e
}

// setImages points the env's host config at an image cache directory.
func (e *env) setImages(dir string) {
	e.t.Helper()
	// The base: the env's own cgroup below the test's, on every hierarchy.
	parents, err := cgroup.OwnParents(e.cgroupName)
	if err != nil {
		e.t.Fatal(err)
	}
	e.imageDir = dir
	// [network] before the cgroup tables: tests append keys to the last table, cgroup.parents.
	hostConfig := fmt.Sprintf("version = 1\n[idmap]\nfirst = %d\ncount = 64\n[images]\ndir = %q\n[network]\ntag = %q\n", e.firstID, dir, e.netTag) +
		config.CgroupTOML("/"+e.cgroupName, parents)
	if e.storage != "" {
		hostConfig += fmt.Sprintf("[storage]\nbackend = %q\n", e.storage)
	}
	if err := os.WriteFile(e.hostConfig, []byte(hostConfig), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
}

// command returns a lodge command for this env.
func (e *env) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, e.bin, append([]string{"--root", e.root}, args...)...)
	cmd.Env = append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LODGE_HOST_CONFIG=" + e.hostConfig}, e.extraEnv...)
	return cmd
}

// hangGuard is how long a lodge command may take before the test calls it
// hung: 2 minutes, and 10 for a create, which on a machine without the
// shared image cache runs debootstrap (2-3 minutes here).
func hangGuard(args []string) time.Duration {
	if len(args) > 0 && args[0] == "create" {
		return 10 * time.Minute
	}
	return 2 * time.Minute
}

// run runs lodge with a generous hang guard (not a timing assertion).
func (e *env) run(args ...string) result {
	return e.runInput("", args...)
}

func (e *env) runInput(stdin string, args ...string) result {
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard(args))
	defer cancel()
	cmd := e.command(ctx, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	noteSanitizerReport("stderr of lodge "+strings.Join(args, " "), stderr.String())
	code := 0
	if exitErr, ok := err.(*exec.ExitError); ok {
		code = exitErr.ExitCode()
	} else if err != nil {
		e.t.Fatalf("run lodge %v: %v", args, err)
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

// must runs lodge and fails the test unless it exits 0.
func (e *env) must(args ...string) string {
	e.t.Helper()
	r := e.run(args...)
	if r.code != 0 {
		e.t.Fatalf("lodge %s: %s", strings.Join(args, " "), r)
	}
	return r.stdout
}

// expectFail runs lodge and checks its exit status and that stderr has want.
func (e *env) expectFail(code int, want string, args ...string) result {
	e.t.Helper()
	r := e.run(args...)
	if r.code != code || !strings.Contains(r.stderr, want) {
		e.t.Fatalf("lodge %s: want exit %d and stderr containing %q, got %s", strings.Join(args, " "), code, want, r)
	}
	if strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
		e.t.Errorf("lodge %s: error is more than one line:\n%s", strings.Join(args, " "), r.stderr)
	}
	return r
}

type info struct {
	Name       string            `json:"name"`
	State      string            `json:"state"`
	PID        int               `json:"pid"`
	Monitor    string            `json:"monitor"`
	MonitorPID int               `json:"monitor_pid"`
	IDMap      string            `json:"idmap"`
	RootfsMode string            `json:"rootfs_mode"`
	Cgroups    map[string]string `json:"cgroups"`
	NICs       []nicInfo         `json:"nics"`
	Migration  string            `json:"migration"`
	Error      string            `json:"error"`
}

type nicInfo struct {
	Name     string `json:"name"`
	HWAddr   string `json:"hwaddr"`
	IPv4     string `json:"ipv4"`
	Address4 string `json:"address4"`
	Address6 string `json:"address6"`
	HostIf   string `json:"host_interface"`
}

func (e *env) info(name string) info {
	e.t.Helper()
	var i info
	if err := json.Unmarshal([]byte(e.must("info", name, "--format", "json")), &i); err != nil {
		e.t.Fatal(err)
	}
	return i
}

func (e *env) list() []info {
	e.t.Helper()
	var infos []info
	if err := json.Unmarshal([]byte(e.must("list", "--format", "json")), &infos); err != nil {
		e.t.Fatal(err)
	}
	return infos
}

// createBusybox makes a busybox container with extra -c options.
func (e *env) createBusybox(name string, config ...string) {
	e.t.Helper()
	args := []string{"create", name, "--template", "busybox"}
	for _, c := range config {
		args = append(args, "-c", c)
	}
	e.must(args...)
}

// cleanup stops and deletes every container of the env and its views
// server, then checks that nothing of it is left on the host.
func (e *env) cleanup() {
	e.collectSanitizerReports()
	var infos []info
	r := e.run("list", "--format", "json")
	if r.code == 0 {
		json.Unmarshal([]byte(r.stdout), &infos)
	}
	for _, i := range infos {
		e.run("delete", "--force", i.Name)
	}
	e.deleteNetworks()
	if r := e.run("lxcfs", "stop"); r.code != 0 {
		e.t.Errorf("lodge lxcfs stop: %s", r)
	}
	e.assertNoLeftovers("")
	if mounts := mountsUnder(e.root); len(mounts) > 0 {
		e.t.Errorf("mounts left behind after lodge lxcfs stop: %v", mounts)
	}
	if procs := processesOf(e.root, ""); len(procs) > 0 {
		e.t.Errorf("processes left behind after lodge lxcfs stop: %v", procs)
	}
	removeCgroupParent(e.cgroupName)
}

// assertNoLeftovers checks that no cgroup, mount, process or runtime file of
// container name (or of any container, for "") is left on the host. The
// views server (lodge lxcfs) outlives containers, like lxcfs: its mount and
// processes are checked by cleanup, after lodge lxcfs stop.
func (e *env) assertNoLeftovers(name string) {
	e.t.Helper()
	// A monitor removes its own cgroup as it exits, just after answering stop.
	if dirs := waitEmpty(func() []string { return cgroupsLeft(e.cgroupName, name) }); len(dirs) > 0 {
		e.t.Errorf("cgroups left behind: %v", dirs)
	}
	if mounts := e.mountsLeft(); len(mounts) > 0 {
		e.t.Errorf("mounts left behind: %v", mounts)
	}
	if procs := e.containerProcesses(name); len(procs) > 0 {
		e.t.Errorf("lodge processes left behind: %v", procs)
	}
	if pids := waitEmpty(func() []int { return processesInCgroup("/" + e.cgroupName + "/" + name) }); len(pids) > 0 {
		e.t.Errorf("container processes left behind: %v", pids)
	}
	if name != "" {
		for _, f := range []string{name + ".json", name + ".sock", name + ".boot_id"} {
			if _, err := os.Stat(filepath.Join(e.root, "run", f)); err == nil {
				e.t.Errorf("runtime file left behind: run/%s", f)
			}
		}
	}
}

// viewsMount is the views server's mount point in the env's root.
func (e *env) viewsMount() string { return filepath.Join(e.root, "run", "lxcfs", "mnt") }

// mountsLeft lists mounts under the env's root but the views server's.
func (e *env) mountsLeft() []string {
	var left []string
	for _, m := range mountsUnder(e.root) {
		if m != e.viewsMount() {
			left = append(left, m)
		}
	}
	return left
}

// containerProcesses lists lodge processes of the env (of container name, or
// all for "") but the views server and its supervisor.
func (e *env) containerProcesses(name string) []string {
	var left []string
	for _, p := range processesOf(e.root, name) {
		if !strings.Contains(p, "lodge-lxcfs") {
			left = append(left, p)
		}
	}
	return left
}

// useStorage makes new containers of the env use storage backend name.
func (e *env) useStorage(name string) {
	e.t.Helper()
	e.storage = name
	e.setImages(e.imageDir)
}

// editRootfs runs fn on the merged root filesystem of the stopped container
// name as the host sees it (storage.OpenView: for overlay, a detached mount
// of its layers, unmounted before editRootfs returns, so that it is never
// mounted beside the container's own). Writes land where the container sees
// them, with natural ids (owner 0).
func (e *env) editRootfs(name string, fn func(dir string)) {
	e.t.Helper()
	v, err := storage.OpenView(e.root, filepath.Join(e.root, "containers", name), true)
	if err != nil {
		e.t.Fatalf("open the root filesystem of %s: %v", name, err)
	}
	defer v.Close()
	fn(v.Dir + "/")
}
