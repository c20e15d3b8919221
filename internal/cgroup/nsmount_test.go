package cgroup

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Two helper processes made of the test binary check the InsideMounts plan
// the way a container's init uses it. The outer one (host root) waits on
// stdin until the test has moved it into the group, then starts the inner
// one in new user, mount and cgroup namespaces, so that the namespaces'
// cgroup root is the group, as the container's root mapped to testUID. The
// inner one mounts the plan and acts as systemd would.
const (
	nsOuterEnv  = "LODGE_CGROUP_NS_OUTER"  // path of the inner binary
	nsInsideEnv = "LODGE_CGROUP_NS_INSIDE" // where to mount
	nsPlanEnv   = "LODGE_CGROUP_NS_PLAN"   // the mounts, as JSON
)

func TestMain(m *testing.M) {
	switch {
	case os.Getenv(nsOuterEnv) != "":
		os.Exit(runOuter(os.Getenv(nsOuterEnv)))
	case os.Getenv(nsInsideEnv) != "":
		os.Exit(runInside(os.Getenv(nsInsideEnv), os.Getenv(nsPlanEnv)))
	}
	os.Exit(m.Run())
}

func runOuter(inner string) int {
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		fmt.Fprintln(os.Stderr, "outer: wait for the go-ahead:", err)
		return 2
	}
	cmd := exec.Command(inner, "-test.run=^$")
	cmd.Env = slices.DeleteFunc(os.Environ(), func(e string) bool { return strings.HasPrefix(e, nsOuterEnv+"=") })
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS | syscall.CLONE_NEWCGROUP,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: testUID, Size: 65536}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: testUID, Size: 65536}},
		// Become the namespace's root; else the child keeps host uid 0,
		// unmapped there, and has no capabilities after exec.
		Credential: &syscall.Credential{Uid: 0, Gid: 0},
	}
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "outer:", err)
		return 1
	}
	return 0
}

// runInside mounts the plan at base, shows /proc/self/cgroup, makes an
// init.scope sub-cgroup on every hierarchy and moves itself in, then tries to
// raise its own limits, which must fail.
func runInside(base, plan string) int {
	var mounts []Mount
	if err := json.Unmarshal([]byte(plan), &mounts); err != nil {
		fmt.Println("FAIL plan:", err)
		return 1
	}
	if err := mountPlan(base, mounts); err != nil {
		fmt.Println("FAIL", err)
		return 1
	}
	cg, _ := os.ReadFile("/proc/self/cgroup")
	fmt.Printf("BEFORE\n%sAFTER\n", cg)
	for _, m := range mounts {
		scope := filepath.Join(base, m.Target, "init.scope")
		if err := os.Mkdir(scope, 0o755); err != nil {
			fmt.Println("FAIL", err)
			return 1
		}
		if err := writeFile(filepath.Join(scope, "cgroup.procs"), strconv.Itoa(os.Getpid())); err != nil {
			fmt.Println("FAIL move into", scope, err)
			return 1
		}
	}
	cg, _ = os.ReadFile("/proc/self/cgroup")
	fmt.Print(string(cg))
	// Values the kernel accepts, so that only permissions can refuse them.
	for f, v := range map[string]string{
		"memory/memory.limit_in_bytes": "-1", "memory.max": "max",
		"pids/pids.max": "max", "pids.max": "max",
		"cpu/cpu.cfs_quota_us": "-1", "cpu.max": "max",
	} {
		err := writeFile(filepath.Join(base, f), v)
		switch {
		case err == nil:
			fmt.Println("RAISED", f)
		case !errors.Is(err, fs.ErrNotExist):
			fmt.Println("refused", f, err)
		}
	}
	fmt.Println("DONE")
	return 0
}

// mountPlan mounts the cgroup filesystems as the container's init would.
func mountPlan(base string, mounts []Mount) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	if len(mounts) != 1 || mounts[0].Target != "" {
		if err := unix.Mount("tmpfs", base, "tmpfs", 0, "mode=755"); err != nil {
			return fmt.Errorf("tmpfs: %w", err)
		}
	}
	for _, m := range mounts {
		dir := filepath.Join(base, m.Target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := unix.Mount("cgroup", dir, m.FSType, unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, m.Data); err != nil {
			return fmt.Errorf("mount %s (%s) on %s: %w", m.FSType, m.Data, dir, err)
		}
		for _, l := range m.Symlinks {
			if err := os.Symlink(m.Target, filepath.Join(base, l)); err != nil {
				return err
			}
		}
	}
	return nil
}

// worldDir makes a directory that testUID, which is not mapped to host
// root, can reach.
func worldDir(t *testing.T, pattern string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// copyExecutable copies the test binary where testUID can run it.
func copyExecutable(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(worldDir(t, "lodge-cgroup-bin-"), "cgroup.test")
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestInsideMountsInUserNamespace mounts the InsideMounts plan in an
// unprivileged container's namespaces and checks what systemd needs: the
// group is the cgroup root, the delegated subtree is writable, the limits
// are not.
func TestInsideMountsInUserNamespace(t *testing.T) {
	h := rootHost(t)
	g := testGroup(t, h, "ns")
	if err := g.Create(); err != nil {
		t.Fatal(err)
	}
	if err := g.Apply(Limits{MemoryBytes: 128 << 20, CPUQuota: 1, Pids: 100}); err != nil {
		t.Fatal(err)
	}
	if err := g.Delegate(testUID, testUID); err != nil {
		t.Fatal(err)
	}
	plan, err := json.Marshal(g.InsideMounts())
	if err != nil {
		t.Fatal(err)
	}
	helper := exec.Command(os.Args[0], "-test.run=^$")
	helper.Env = append(os.Environ(), nsOuterEnv+"="+copyExecutable(t),
		nsInsideEnv+"="+worldDir(t, "lodge-cgroup-mnt-"), nsPlanEnv+"="+string(plan))
	stdin, err := helper.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	helper.Stdout, helper.Stderr = &out, &out
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- helper.Wait() }()
	if err := g.AddProcess(helper.Process.Pid); err != nil {
		helper.Process.Kill()
		<-done
		t.Fatal(err)
	}
	stdin.Write([]byte("go\n"))
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		helper.Process.Kill()
		<-done
		t.Fatal("helper hung")
	}
	t.Logf("plan %s\noutput:\n%s", plan, out.String())
	if err != nil {
		t.Fatalf("mounting the plan inside the namespaces failed: %v", err)
	}
	_, rest, _ := strings.Cut(out.String(), "BEFORE\n")
	before, after, _ := strings.Cut(rest, "AFTER\n")
	for _, line := range strings.Split(strings.TrimSpace(before), "\n") {
		if !strings.HasSuffix(line, ":/") {
			t.Errorf("inside the cgroup namespace, /proc/self/cgroup line %q is not the root", line)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(after), "\n") {
		isCgroupLine := line != "" && line[0] >= '0' && line[0] <= '9'
		if isCgroupLine && !strings.HasSuffix(line, ":/init.scope") {
			t.Errorf("after moving into init.scope: %q", line)
		}
	}
	if strings.Contains(out.String(), "RAISED") {
		t.Error("the container's root could write its own limits")
	}
	if !strings.Contains(out.String(), "refused memory/memory.limit_in_bytes") && !strings.Contains(out.String(), "refused memory.max") {
		t.Error("no memory limit file was tried")
	}
	if !strings.Contains(after, "DONE") {
		t.Error("the inner helper did not finish")
	}
	// On the host, the guest's sub-cgroups are below the group, owned by it.
	for _, d := range g.dirs {
		fi, err := os.Stat(filepath.Join(d.path, "init.scope"))
		if err != nil {
			t.Errorf("%s: %v", d.h.Key(), err)
			continue
		}
		if uid := fi.Sys().(*syscall.Stat_t).Uid; uid != testUID {
			t.Errorf("%s/init.scope owned by %d", d.path, uid)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	if err := g.Destroy(); err != nil {
		t.Fatal(err)
	}
}
