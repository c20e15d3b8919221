package tests

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The mount part of the escape suite: as root inside a busybox and a Debian
// container, try to undo the masks and read-only mounts over /proc and /sys,
// clear nodev on the root, write host sysctls, and mount a fresh, unmasked
// proc. Each attempt must fail, and the mount table must be the same after
// all of them.

// lockedMounts must be in every container's mount table, locked.
var lockedMounts = []string{
	"/", "/proc", "/proc/sys", "/proc/sys/net", "/proc/irq", "/proc/bus", "/proc/fs",
	"/proc/keys", "/proc/timer_list", "/proc/acpi", "/proc/sys/kernel/random/boot_id",
	"/sys", "/sys/fs/cgroup",
}

// mountEscapes are shell commands run as root in the container; each must
// fail. With nesting, a fresh proc and sysfs are allowed (that is what
// security.nesting is for), and they are left out.
func mountEscapes(nesting bool) []string {
	var attempts []string
	for _, m := range lockedMounts {
		attempts = append(attempts, "umount "+m, "umount -l "+m)
	}
	attempts = append(attempts,
		"mount -o remount,rw /proc/sys",
		"mount -o remount,bind,rw /proc/sys",
		"mount -o remount,bind,rw /proc/irq",
		"mount -o remount,rw /sys",
		"mount -o remount,bind,rw /sys",
		"mount -o remount,bind,rw /sys/fs/cgroup",
		"mount -o remount,dev /",
		"mount -o remount,bind,dev /",
		"mount -o remount,bind,suid,dev,exec /proc",
		"mkdir -p /tmp/esc-move && mount --move /proc/keys /tmp/esc-move",
		"mkdir -p /tmp/esc-move && mount --move /proc/sys /tmp/esc-move",
		"mkdir -p /tmp/esc-bind && mount --bind /proc /tmp/esc-bind", // a non-recursive bind would show /proc unmasked
		"echo 1 > /proc/sys/kernel/panic",
		"echo '|/tmp/x' > /proc/sys/kernel/core_pattern",
		"echo 3 > /proc/sys/vm/drop_caches",
		"echo h > /proc/sysrq-trigger",
	)
	if !nesting {
		attempts = append(attempts,
			"mkdir -p /tmp/esc-proc && mount -t proc proc /tmp/esc-proc",
			"mkdir -p /tmp/esc-sys && mount -t sysfs sysfs /tmp/esc-sys", // read-write
		)
	}
	return attempts
}

func TestEscapeMountsBusybox(t *testing.T) {
	e := newEnv(t)
	e.createBusybox("esc")
	e.must("start", "esc")
	tryMountEscapes(t, e, "esc", false)
}

func TestEscapeMountsDebian(t *testing.T) {
	e := newEnv(t)
	e.must("create", "escd", "--template", "debian")
	e.must("start", "escd")
	waitRunning(t, e, "escd")
	tryMountEscapes(t, e, "escd", false)
}

// tryMountEscapes runs every attempt in container name and checks that each
// fails and that the host's sysctls and the container's mounts are unchanged.
func tryMountEscapes(t *testing.T, e *env, name string, nesting bool) {
	t.Helper()
	before := containerMounts(t, e, name)
	for _, m := range lockedMounts {
		if _, ok := before[m]; !ok {
			t.Fatalf("%s is not mounted in the container; mounts: %v", m, before)
		}
	}
	hostSysctls := readHostSysctls(t)
	for _, attempt := range mountEscapes(nesting) {
		r := e.run("exec", name, "--", "sh", "-c", attempt+" 2>/dev/null")
		if r.code == 0 {
			t.Errorf("as root in %s, %q succeeded", name, attempt)
		}
		if r.code == 125 || r.code == 126 || r.code == 127 {
			t.Errorf("%q did not run at all in %s: %s", attempt, name, r)
		}
	}
	after := containerMounts(t, e, name)
	for m, opts := range before {
		if after[m] != opts {
			t.Errorf("mount %s changed from %q to %q", m, opts, after[m])
		}
	}
	if got := readHostSysctls(t); got != hostSysctls {
		t.Errorf("host sysctls changed from %q to %q", hostSysctls, got)
	}
}

// containerMounts maps each mount point in the container to its options and
// filesystem, the top one where mounts are stacked.
func containerMounts(t *testing.T, e *env, name string) map[string]string {
	t.Helper()
	out := e.must("exec", name, "--", "cat", "/proc/self/mountinfo")
	mounts := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 10 {
			continue
		}
		sep := 6
		for sep < len(f) && f[sep] != "-" {
			sep++
		}
		if sep+1 >= len(f) {
			continue
		}
		mounts[f[4]] = f[5] + " " + f[sep+1]
	}
	return mounts
}

func readHostSysctls(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, f := range []string{"kernel/panic", "kernel/core_pattern"} {
		data, err := os.ReadFile("/proc/sys/" + f)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(data)
	}
	return b.String()
}

// TestNestingMountsProc: with security.nesting = true a container can mount a
// new proc for a nested pid namespace (as nested containers and
// `unshare --mount-proc` do); without it the kernel refuses, since lodge's
// /proc is masked; in both, the masks stay locked.
func TestNestingMountsProc(t *testing.T) {
	e := newEnv(t)
	e.createBusybox("plain")
	e.createBusybox("nest", "security.nesting=true")
	e.must("start", "plain")
	e.must("start", "nest")
	const newProc = "mkdir -p /tmp/p && mount -t proc proc /tmp/p && test -e /tmp/p/self"
	if r := e.run("exec", "plain", "--", "sh", "-c", newProc); r.code == 0 {
		t.Errorf("a container without nesting mounted a fresh proc: %s", r)
	}
	if r := e.run("exec", "nest", "--", "sh", "-c", newProc); r.code != 0 {
		t.Errorf("a container with security.nesting cannot mount proc: %s", r)
	}
	if r := e.run("exec", "nest", "--", "sh", "-c", "test -d /dev/.lodge/proc/self && test -d /dev/.lodge/sys/kernel"); r.code != 0 {
		t.Errorf("no unmasked proc and sysfs in /dev/.lodge: %s", r)
	}
	tryMountEscapes(t, e, "nest", true)
}

// TestSymlinkedImageDirs: an image whose /proc, /sys, /dev or /run is a
// symlink pointing out of it is refused at start, with the path named; the
// place the link points at stays untouched and nothing is mounted on the
// host. A symlinked /etc/hostname is harmless (nothing mounts or writes it
// at start).
func TestSymlinkedImageDirs(t *testing.T) {
	e := newEnv(t)
	// The test renames the image's directories in place: a plain directory
	// tree (overlay refuses to rename a lower directory: EXDEV).
	e.useStorage("dir")
	e.createBusybox("sl")
	rootfs := filepath.Join(e.root, "containers", "sl", "rootfs")
	outside := t.TempDir()
	hostMounts := mountPoints(t)
	watched := []string{outside, e.root}
	for _, dir := range []string{"proc", "sys", "dev", "run"} {
		t.Run(dir, func(t *testing.T) {
			path := filepath.Join(rootfs, dir)
			if err := os.Rename(path, path+".away"); err != nil {
				t.Fatal(err)
			}
			defer os.Rename(path+".away", path)
			if err := os.Symlink("/../../../../../.."+outside, path); err != nil {
				t.Fatal(err)
			}
			defer os.Remove(path)
			e.expectFail(1, "/"+dir+" in the root filesystem is, or is below, a symbolic link", "start", "sl")
			e.assertNoLeftovers("sl")
			if entries, _ := os.ReadDir(outside); len(entries) != 0 {
				t.Errorf("the host directory the link points at was written: %v", entries)
			}
			if added := newMounts(hostMounts, mountPoints(t), watched); len(added) > 0 {
				t.Errorf("mounts appeared on the host: %v", added)
			}
		})
	}
	// A link below a mount point: /dev is a directory, but lodge makes /dev
	// itself a tmpfs, so links inside the image's /dev do not matter; a link
	// at /etc/hostname is not followed by anything at start.
	victim := filepath.Join(outside, "hostname")
	os.WriteFile(victim, []byte("host\n"), 0o644)
	hostname := filepath.Join(rootfs, "etc/hostname")
	os.Remove(hostname)
	if err := os.Symlink(victim, hostname); err != nil {
		t.Fatal(err)
	}
	e.must("start", "sl")
	e.must("exec", "sl", "--", "true")
	e.must("stop", "--force", "sl")
	if data, _ := os.ReadFile(victim); string(data) != "host\n" {
		t.Errorf("the host file behind /etc/hostname changed: %q", data)
	}
	if added := newMounts(hostMounts, mountPoints(t), watched); len(added) > 0 {
		t.Errorf("mounts appeared on the host: %v", added)
	}
}

// TestSymlinkedHostnameAtCreate: create writes /etc/hostname and /etc/hosts
// as host root into an imported image; links there pointing at host files
// are replaced, not written through.
func TestSymlinkedHostnameAtCreate(t *testing.T) {
	e := newEnv(t)
	e.setImages(t.TempDir())
	e.createBusybox("src")
	img := e.images()[0].ID
	dir := t.TempDir()
	tarball := filepath.Join(dir, "bb.tar")
	e.must("image", "export", img, tarball)
	tree := filepath.Join(dir, "tree")
	os.Mkdir(tree, 0o755)
	runHost(t, "tar", "-xpf", tarball, "-C", tree, "--numeric-owner")
	victims := t.TempDir()
	for _, f := range []string{"hostname", "hosts"} {
		v := filepath.Join(victims, f)
		os.WriteFile(v, []byte("host\n"), 0o644)
		os.Remove(filepath.Join(tree, "etc", f))
		if err := os.Symlink("/../../../.."+v, filepath.Join(tree, "etc", f)); err != nil {
			t.Fatal(err)
		}
	}
	evil := filepath.Join(dir, "evil.tar")
	runHost(t, "tar", "-cpf", evil, "-C", tree, "--numeric-owner", ".")
	e.must("image", "import", evil, "--alias", "evil")
	e.must("create", "victim", "--image", "evil")
	for _, f := range []string{"hostname", "hosts"} {
		if data, _ := os.ReadFile(filepath.Join(victims, f)); string(data) != "host\n" {
			t.Errorf("create wrote the host's %s through the image's link: %q", f, data)
		}
	}
	e.must("start", "victim")
	if got := strings.TrimSpace(e.must("exec", "victim", "--", "cat", "/etc/hostname")); got != "victim" {
		t.Errorf("/etc/hostname in the container: %q", got)
	}
}

func runHost(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// mountPoints lists the host's mount points (this test's mount namespace is
// the host's).
func mountPoints(t *testing.T) map[string]bool {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	points := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 {
			points[f[4]] = true
		}
	}
	return points
}

// newMounts lists mount points in after, not in before, below one of the
// watched directories (other tests on the machine mount elsewhere), but the
// views server's.
func newMounts(before, after map[string]bool, watched []string) []string {
	var added []string
	for m := range after {
		if before[m] || strings.Contains(m, "/lxcfs/") {
			continue
		}
		for _, w := range watched {
			if m == w || strings.HasPrefix(m, w+"/") {
				added = append(added, m)
			}
		}
	}
	return added
}
