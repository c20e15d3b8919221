package overlay

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The container side runs in a child of the test binary (re-exec) that the
// test starts in new user and mount namespaces, as lodge's monitor starts a
// container's first process.
const childEnv = "LODGE_OVERLAY_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "capreport" {
		capReport()
		os.Exit(0)
	}
	if mode := os.Getenv(childEnv); mode != "" {
		if err := child(mode); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// hostID is the host uid (and gid) of the test container's root: far above
// any range lodge's allocator hands out by default, so no real container
// shares it.
var hostID = uint32(2_000_000_000 + (os.Getpid()%1000)*65536)

const idCount = 65536

// capV2 is a security.capability value (VFS_CAP_REVISION_2) granting
// cap_net_raw (13) permitted and effective.
var capV2 = []byte{0x01, 0, 0, 0x02, 0x00, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}

// result is what the container side saw, keyed by check.
type result map[string]string

// child is the container's first process: it receives the idmapped layers,
// creates the overlay, works in it as the container's root and reports.
func child(mode string) error {
	sock := 3
	buf := make([]byte, 64)
	oob := make([]byte, unix.CmsgSpace(4*4))
	_, oobn, _, _, err := unix.Recvmsg(sock, buf, oob, 0)
	if err != nil {
		return err
	}
	res := result{}
	var lowers []*os.File
	var lower, upper, work *os.File
	dir, propagated := strings.CutPrefix(mode, "propagated:")
	if propagated {
		lower, upper, work, err = propagatedLayers(dir, res)
		mode = "fd"
	} else {
		var fds []int
		if fds, err = parseRights(oob[:oobn]); err != nil {
			return err
		}
		for i, fd := range fds[:len(fds)-1] {
			lowers = append(lowers, os.NewFile(uintptr(fd), "lower"+strconv.Itoa(i)))
		}
		lowers, upper, work, err = attachLayers(lowers, os.NewFile(uintptr(fds[len(fds)-1]), "ct"))
	}
	if lower != nil {
		lowers = []*os.File{lower}
	}
	if err != nil {
		res["mount"] = err.Error()
		return send(sock, res, -1)
	}
	var mnt *os.File
	switch mode {
	case "fd":
		start := time.Now()
		mnt, err = Mount(lowers, upper, work)
		res["mount time"] = time.Since(start).String() // logged, never asserted
		res["clear ro of the lower's mount"] = errString(setAttr("/tmp/lower0", 0, unix.MOUNT_ATTR_RDONLY))
	case "fill":
		if mnt, err = Mount(lowers, upper, work); err == nil {
			fill(int(mnt.Fd()), res)
		}
	case "capexec":
		if mnt, err = Mount(lowers, upper, work); err == nil {
			res["capexec"] = capExec(mnt)
		}
	case "index=on", "redirect_dir=on", "metacopy=on", "xino=on", "nfs_export=on":
		mnt, err = mountWith(lowers, upper, work, []string{mode})
	default:
		mnt, err = mountByOptions(mode, lowers[0], upper, work)
	}
	if err != nil {
		res["mount"] = err.Error()
		return send(sock, res, -1)
	}
	res["mount"] = "ok"
	if mode != "fill" && mode != "capexec" {
		work1(int(mnt.Fd()), res)
	}
	if propagated {
		// The layer mount is the root of what propagated: it is not locked
		// to its parent (an empty directory of the stage's tmpfs), and the
		// overlay keeps private clones of its layers anyway.
		res["unmount the propagated lower"] = errString(unix.Unmount(dir+"/lower", unix.MNT_DETACH))
		res["overlay works after"] = errString(writeAt(int(mnt.Fd()), "after-unmount", unix.O_CREAT|unix.O_EXCL))
	}
	if err := send(sock, res, int(mnt.Fd())); err != nil {
		return err
	}
	if propagated {
		// The stage attached the overlay below its shared mount point, as
		// it hands over the finished tree: it is back here, locked.
		if _, _, _, _, err := unix.Recvmsg(sock, buf, nil, 0); err != nil {
			return err
		}
		back := result{}
		var st unix.Stat_t
		if err := unix.Stat(dir+"/root/new-file", &st); err != nil {
			back["stat root/new-file"] = err.Error()
		} else {
			back["stat root/new-file"] = fmt.Sprintf("%d:%d", st.Uid, st.Gid)
		}
		back["clear nodev of the root"] = errString(setAttr(dir+"/root", 0, unix.MOUNT_ATTR_NODEV))
		back["write in the root"] = errString(writeAt(unix.AT_FDCWD, dir+"/root/via-stage", unix.O_CREAT|unix.O_EXCL))
		if err := send(sock, back, -1); err != nil {
			return err
		}
	}
	_, _, _, _, _ = unix.Recvmsg(sock, buf, nil, 0) // until the test is done
	return nil
}

// attachLayers attaches the detached layer mounts in the child's own mount
// namespace (on a tmpfs over /tmp there, which the host never sees): overlay
// clones each layer with clone_private_mount, which refuses a detached mount
// made by another namespace.
func attachLayers(lowers []*os.File, ct *os.File) ([]*os.File, *os.File, *os.File, error) {
	scratch, err := unix.Fsopen("tmpfs", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := unix.FsconfigCreate(scratch); err != nil {
		return nil, nil, nil, err
	}
	tm, err := unix.Fsmount(scratch, unix.FSMOUNT_CLOEXEC, 0)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := unix.MoveMount(tm, "", unix.AT_FDCWD, "/tmp", unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return nil, nil, nil, fmt.Errorf("scratch tmpfs: %w", err)
	}
	for _, f := range append(lowers, ct) {
		name := "/tmp/" + f.Name()
		if err := os.Mkdir(name, 0o755); err != nil {
			return nil, nil, nil, err
		}
		if err := unix.MoveMount(int(f.Fd()), "", unix.AT_FDCWD, name, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
			return nil, nil, nil, fmt.Errorf("attach %s in the container's namespace: %w", name, err)
		}
	}
	var out []*os.File
	names := []string{"ct/upper", "ct/work"}
	for _, l := range lowers {
		names = append(names, l.Name())
	}
	for _, name := range names {
		o, err := os.OpenFile("/tmp/"+name, unix.O_PATH|unix.O_DIRECTORY, 0)
		if err != nil {
			return nil, nil, nil, err
		}
		out = append(out, o)
	}
	return out[2:], out[0], out[1], nil
}

// propagatedLayers opens the layers the host attached below dir in the
// stage's shared mount, which reached this namespace by propagation, locked.
func propagatedLayers(dir string, res result) (*os.File, *os.File, *os.File, error) {
	res["clear ro of the propagated lower"] = errString(setAttr(dir+"/lower", 0, unix.MOUNT_ATTR_RDONLY))
	var out [3]*os.File
	var err error
	for i, name := range []string{"lower", "ct/upper", "ct/work"} {
		if out[i], err = os.OpenFile(dir+"/"+name, unix.O_PATH|unix.O_DIRECTORY, 0); err != nil {
			return nil, nil, nil, err
		}
	}
	return out[0], out[1], out[2], nil
}

// fill reports the overlay's size as df shows it, then writes until the
// upper's filesystem is full.
func fill(m int, res result) {
	var root, lower unix.Stat_t
	if unix.Fstat(m, &root) == nil && unix.Fstatat(m, "etc/hostname", &lower, unix.AT_SYMLINK_NOFOLLOW) == nil {
		res["lower file on the overlay's st_dev"] = strconv.FormatBool(lower.Dev == root.Dev)
	}
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(m, &sfs); err == nil {
		res["df size MiB"] = strconv.FormatUint(sfs.Blocks*uint64(sfs.Bsize)>>20, 10)
	}
	fd, err := unix.Openat(m, "big", unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
	if err != nil {
		res["fill"] = err.Error()
		return
	}
	defer unix.Close(fd)
	buf := make([]byte, 1<<20)
	for i := 0; i < 1024; i++ {
		if _, err := unix.Write(fd, buf); err != nil {
			res["fill"] = err.Error()
			return
		}
	}
	res["fill"] = "wrote 1 GiB"
}

// capExec copies this binary into the overlay, gives the copy cap_net_raw
// as setcap does, and runs it as uid 1000 of the container: it reports its
// effective capabilities.
func capExec(mnt *os.File) string {
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		return err.Error()
	}
	m := int(mnt.Fd())
	fd, err := unix.Openat(m, "capbin", unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o755)
	if err != nil {
		return err.Error()
	}
	_, err = unix.Write(fd, self)
	unix.Close(fd)
	if err != nil {
		return err.Error()
	}
	if err := setxattrAt(m, "capbin", "security.capability", capV2); err != nil {
		return err.Error()
	}
	// Attached in this namespace: the kernel ignores file capabilities and
	// setuid on a mount outside the caller's mount namespace (mnt_may_suid),
	// a detached one included.
	if err := os.Mkdir("/tmp/root", 0o755); err != nil {
		return err.Error()
	}
	if err := unix.MoveMount(m, "", unix.AT_FDCWD, "/tmp/root", unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return err.Error()
	}
	var report []string
	for _, bin := range []string{"capbin", "bin/suidbin"} {
		cmd := exec.Command("/tmp/root/" + bin)
		cmd.Env = []string{childEnv + "=capreport"}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 1000, Gid: 1000}}
		out, err := cmd.Output()
		if err != nil {
			return err.Error()
		}
		report = append(report, strings.TrimSpace(string(out)))
	}
	return strings.Join(report, "; ")
}

// capReport prints the effective capability set of this process.
func capReport() {
	status, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(status), "\n") {
		for _, key := range []string{"Uid:", "CapEff:"} {
			if v, ok := strings.CutPrefix(line, key); ok {
				fmt.Print(key, strings.Join(strings.Fields(v), ","), " ")
			}
		}
	}
}

func setAttr(path string, set, clear uint64) error {
	return unix.MountSetattr(unix.AT_FDCWD, path, 0, &unix.MountAttr{Attr_set: set, Attr_clr: clear})
}

func errString(err error) string {
	if err != nil {
		return err.Error()
	}
	return "ok"
}

// mountByOptions is Mount with string options, to record what else works:
// "path" gives the layers as /proc/self/fd/N paths, "nouserxattr" leaves
// userxattr out.
func mountByOptions(mode string, lower, upper, work *os.File) (*os.File, error) {
	fs, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fs)
	p := func(f *os.File) string { return "/proc/self/fd/" + strconv.Itoa(int(f.Fd())) }
	set := [][2]string{{"lowerdir", p(lower)}, {"upperdir", p(upper)}, {"workdir", p(work)}}
	if mode != "nouserxattr" {
		set = append(set, [2]string{"userxattr", ""})
	}
	for _, kv := range set {
		if kv[1] == "" {
			err = unix.FsconfigSetFlag(fs, kv[0])
		} else {
			err = unix.FsconfigSetString(fs, kv[0], kv[1])
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", kv[0], err)
		}
	}
	if err := unix.FsconfigCreate(fs); err != nil {
		return nil, fmt.Errorf("create: %w", err)
	}
	mnt, err := unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("fsmount: %w", err)
	}
	return os.NewFile(uintptr(mnt), "overlay"), nil
}

// work1 does what a container's root does to its files, relative to the
// overlay's root m, and records every outcome.
func work1(m int, res result) {
	note := func(key string, err error) {
		if err != nil {
			res[key] = err.Error()
		} else {
			res[key] = "ok"
		}
	}
	owner := func(key, name string) {
		var st unix.Stat_t
		if err := unix.Fstatat(m, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			res[key] = err.Error()
			return
		}
		res[key] = fmt.Sprintf("%d:%d %o", st.Uid, st.Gid, st.Mode&07777)
	}
	owner("stat lower etc/hostname", "etc/hostname")
	owner("stat new-file (before)", "new-file")
	owner("stat del-me (before)", "del-me")
	if fd, err := unix.Openat(m, "dir-del", unix.O_RDONLY|unix.O_DIRECTORY, 0); err == nil {
		names, _ := os.NewFile(uintptr(fd), "dir-del").Readdirnames(-1)
		res["dir-del entries (before)"] = fmt.Sprint(names)
	}
	owner("stat lower home/u", "home/u")
	owner("stat lower bin/su", "bin/su")
	note("create new-file", writeAt(m, "new-file", unix.O_CREAT|unix.O_EXCL))
	owner("stat new-file", "new-file")
	note("mkdir new-dir", unix.Mkdirat(m, "new-dir", 0o755))
	note("write etc/hostname", writeAt(m, "etc/hostname", unix.O_TRUNC))
	note("create home/u/file", writeAt(m, "home/u/file", unix.O_CREAT|unix.O_EXCL))
	note("chown home/u/file 1000", unix.Fchownat(m, "home/u/file", 1000, 1000, 0))
	note("unlink del-me", unix.Unlinkat(m, "del-me", 0))
	note("rmdir dir-del", unix.Unlinkat(m, "dir-del", unix.AT_REMOVEDIR))
	note("mkdir dir-del again", unix.Mkdirat(m, "dir-del", 0o755))
	note("rename dir-ren", unix.Renameat(m, "dir-ren", m, "dir-ren2"))
	note("create suid", writeAt(m, "suid", unix.O_CREAT|unix.O_EXCL))
	note("chmod suid 4755", unix.Fchmodat(m, "suid", 0o4755, 0))
	owner("stat suid", "suid")
	note("chmod lower bin/su 4711", unix.Fchmodat(m, "bin/su", 0o4711, 0))
	note("setcap new-file", setxattrAt(m, "new-file", "security.capability", capV2))
	val := make([]byte, 64)
	if n, err := getxattrAt(m, "new-file", "security.capability", val); err != nil {
		res["getcap new-file"] = err.Error()
	} else {
		res["getcap new-file"] = fmt.Sprintf("%x", val[:n])
	}
	note("setxattr user.test", setxattrAt(m, "new-file", "user.test", []byte("v")))
	note("setxattr trusted.test", setxattrAt(m, "new-file", "trusted.test", []byte("v")))
	note("link linked-a linked-c", unix.Linkat(m, "linked-a", m, "linked-c", 0))
	owner("stat linked-b (after a's copy-up)", "linked-b")
	var a, b unix.Stat_t
	_ = unix.Fstatat(m, "linked-a", &a, 0)
	_ = unix.Fstatat(m, "linked-b", &b, 0)
	res["linked-a nlink, same inode as linked-b"] = fmt.Sprintf("%d %v", a.Nlink, a.Ino == b.Ino)
	note("mknod dev", unix.Mknodat(m, "dev-null", unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(m, &sfs); err == nil {
		res["statfs blocks"] = strconv.FormatUint(sfs.Blocks, 10)
	}
}

func writeAt(dir int, name string, flags int) error {
	fd, err := unix.Openat(dir, name, flags|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	_, err = unix.Write(fd, []byte("written inside\n"))
	return err
}

func setxattrAt(dir int, name, attr string, val []byte) error {
	fd, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Fsetxattr(fd, attr, val, 0)
}

func getxattrAt(dir int, name, attr string, val []byte) (int, error) {
	fd, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	return unix.Fgetxattr(fd, attr, val)
}

func send(sock int, res result, fd int) error {
	data, _ := json.Marshal(res)
	var oob []byte
	if fd >= 0 {
		oob = unix.UnixRights(fd)
	}
	return unix.Sendmsg(sock, data, oob, nil, 0)
}

func parseRights(oob []byte) ([]int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil || len(msgs) != 1 {
		return nil, fmt.Errorf("expected descriptors: %v", err)
	}
	return unix.ParseUnixRights(&msgs[0])
}

// container is the test's container: its first process and the socket to it.
type container struct {
	cmd     *exec.Cmd
	sock    int
	stopped bool
}

func startContainer(t *testing.T, mode string) *container {
	t.Helper()
	c, err := spawn(mode)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.stop(t) })
	return c
}

// spawn starts the container's first process in new user and mount
// namespaces, from the calling thread (its mount namespace is copied).
func spawn(mode string) (*container, error) {
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	theirs := os.NewFile(uintptr(pair[1]), "child-sock")
	defer theirs.Close()
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = append(os.Environ(), childEnv+"="+mode)
	cmd.ExtraFiles = []*os.File{theirs}
	cmd.Stderr = os.Stderr
	idMap := []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(hostID), Size: idCount}}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:                 syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
		UidMappings:                idMap,
		GidMappings:                idMap,
		GidMappingsEnableSetgroups: true,
		Credential:                 &syscall.Credential{Uid: 0, Gid: 0},
		// No Pdeathsig: it fires when the forking *thread* exits, and the
		// tests end locked threads (their private mount namespaces) that
		// may have forked a child. The child exits when its socket closes,
		// which the death of the test process does too.
	}
	if err := cmd.Start(); err != nil {
		unix.Close(pair[0])
		return nil, fmt.Errorf("start the container's process: %w", err)
	}
	return &container{cmd: cmd, sock: pair[0]}, nil
}

// stop closes the socket, on which the child exits, and waits for it.
func (c *container) stop(t *testing.T) {
	if c.stopped {
		return
	}
	c.stopped = true
	unix.Close(c.sock)
	if err := c.cmd.Wait(); err != nil {
		t.Errorf("container process: %v", err)
	}
}

func (c *container) userns(t *testing.T) *os.File {
	t.Helper()
	f, err := os.Open("/proc/" + strconv.Itoa(c.cmd.Process.Pid) + "/ns/user")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// exchange sends the layers and returns what the child saw and the overlay.
func (c *container) exchange(t *testing.T, layers ...*os.File) (result, *os.File) {
	t.Helper()
	fds := make([]int, len(layers))
	for i, l := range layers {
		fds[i] = int(l.Fd())
	}
	var rights []byte
	if len(fds) > 0 {
		rights = unix.UnixRights(fds...)
	}
	if err := unix.Sendmsg(c.sock, []byte("layers"), rights, nil, 0); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<16)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := unix.Recvmsg(c.sock, buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil || n == 0 {
		t.Fatalf("no answer from the container's process: %v", err)
	}
	res := result{}
	if err := json.Unmarshal(buf[:n], &res); err != nil {
		t.Fatal(err)
	}
	var mnt *os.File
	if oobn > 0 {
		fds, err := parseRights(oob[:oobn])
		if err != nil {
			t.Fatal(err)
		}
		mnt = os.NewFile(uintptr(fds[0]), "overlay")
		t.Cleanup(func() { mnt.Close() })
	}
	return res, mnt
}

// image builds a tiny lower tree with natural ids, as an image in the cache.
func image(t *testing.T, dir string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"etc", "home/u", "bin", "dir-del", "dir-ren/sub"} {
		must(os.MkdirAll(filepath.Join(dir, d), 0o755))
	}
	for _, f := range []string{"etc/hostname", "bin/su", "del-me", "linked-a", "dir-ren/sub/f"} {
		must(os.WriteFile(filepath.Join(dir, f), []byte("image\n"), 0o644))
	}
	must(os.Link(filepath.Join(dir, "linked-a"), filepath.Join(dir, "linked-b")))
	must(unix.Chmod(filepath.Join(dir, "bin/su"), 0o4755)) // os.Chmod drops 0o4000
	must(os.Chown(filepath.Join(dir, "home/u"), 1000, 1000))
}

// containerDir makes the container's overlay directory: upper and work, owned
// by root with natural ids like everything else on disk.
func containerDir(t *testing.T, dir string) {
	t.Helper()
	for _, d := range []string{"upper", "work"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func requireRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates user namespaces with a foreign id range and idmapped mounts")
	}
}

func layers(t *testing.T, c *container, idmapUpper bool) (lower, base *os.File, dir string) {
	t.Helper()
	dir = t.TempDir()
	lowerDir, ctDir := filepath.Join(dir, "image"), filepath.Join(dir, "ct")
	image(t, lowerDir)
	containerDir(t, ctDir)
	userns := c.userns(t)
	lower, err := IdmapLayer(lowerDir, userns, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lower.Close() })
	if idmapUpper {
		base, err = IdmapLayer(ctDir, userns, false)
	} else {
		var fd int
		fd, err = unix.OpenTree(unix.AT_FDCWD, ctDir, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
		base = os.NewFile(uintptr(fd), ctDir)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { base.Close() })
	return lower, base, filepath.Join(ctDir, "upper")
}

// TestRecipe runs the whole recipe: host-made idmapped layers, the overlay
// created inside the container's namespaces, files written there as the
// container's root, natural ids on disk, whiteouts, and the overlay attached
// by the host like lodge's stage attaches the root filesystem.
func TestRecipe(t *testing.T) {
	requireRoot(t)
	c := startContainer(t, "fd")
	lower, base, upperDir := layers(t, c, true)
	res, mnt := c.exchange(t, lower, base)
	data, _ := json.MarshalIndent(res, "", "  ")
	t.Logf("inside the container:\n%s", data)
	want := result{
		"mount":                   "ok",
		"stat lower etc/hostname": "0:0 644", // the image's root is the container's root
		"stat lower home/u":       "1000:1000 755",
		"stat lower bin/su":       "0:0 4755", // setuid of the image is kept
		"stat new-file":           "0:0 644",
		"create new-file":         "ok",
		"write etc/hostname":      "ok", // copy-up
		"unlink del-me":           "ok",
		"rmdir dir-del":           "ok",
		"mkdir dir-del again":     "ok", // needs the opaque xattr: userxattr
		"chown home/u/file 1000":  "ok",
		"stat suid":               "0:0 4755",
		"chmod lower bin/su 4711": "ok",
		"setcap new-file":         "ok",
		"setxattr user.test":      "ok",
		"link linked-a linked-c":  "ok",
		// Known limits, recorded so that a kernel change shows up here.
		"mknod dev":             "operation not permitted",   // no CAP_MKNOD on the host
		"setxattr trusted.test": "operation not permitted",   // trusted.* is host root's
		"rename dir-ren":        "invalid cross-device link", // no redirect_dir: mv copies
		// Hard links of the image break on copy-up (no index=on).
		"linked-a nlink, same inode as linked-b": "2 false",
	}
	for k, v := range want {
		if res[k] != v {
			t.Errorf("inside: %s = %q, want %q", k, res[k], v)
		}
	}
	onDisk := map[string]string{
		"new-file":     "0:0 644 reg",
		"suid":         "0:0 4755 reg",
		"bin/su":       "0:0 4711 reg", // copied up, setuid kept (root chmod)
		"etc/hostname": "0:0 644 reg",
		"home/u/file":  "1000:1000 644 reg",
		"del-me":       "0:0 0 chr 0/0", // whiteout
		"dir-del":      "0:0 755 dir",
		"linked-c":     "0:0 644 reg",
	}
	for name, w := range onDisk {
		if got := describe(filepath.Join(upperDir, name)); got != w {
			t.Errorf("on disk: upper/%s = %q, want %q", name, got, w)
		}
	}
	if v := xattr(filepath.Join(upperDir, "dir-del"), "user.overlay.opaque"); v != "y" {
		t.Errorf("upper/dir-del user.overlay.opaque = %q, want \"y\"", v)
	}
	// The container's root wrote a revision 2 capability (as setcap does).
	// The kernel makes it a revision 3 one whose root id is the container's
	// root, and maps that through the idmapped upper: root id 0 on disk,
	// which it stores as revision 2 again. Natural, like the file's owner,
	// and valid for whichever id range the container gets next.
	if v := xattr(filepath.Join(upperDir, "new-file"), "security.capability"); v != fmt.Sprintf("%x", capV2) {
		t.Errorf("upper/new-file security.capability = %s, want %x", v, capV2)
	}
	if mnt == nil {
		t.Fatal("the container's process sent no overlay mount")
	}
	hostAttach(t, mnt)
}

// hostAttach attaches the container-made overlay in a private mount namespace
// of a host thread, as lodge's stage does with the root filesystem: the
// detached mount of another user namespace can be attached there, and the
// host sees the container's files with the container's host ids.
func hostAttach(t *testing.T, mnt *os.File) {
	target := t.TempDir()
	errc := make(chan error, 1)
	go func() {
		// The thread is never unlocked: it exits with its mount namespace.
		runtime.LockOSThread()
		errc <- func() error {
			if err := unix.Unshare(unix.CLONE_NEWNS | unix.CLONE_FS); err != nil {
				return err
			}
			if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
				return err
			}
			// lodge's stage sets nodev on the root tree (rootfs.OpenTree).
			attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_NODEV}
			if err := unix.MountSetattr(int(mnt.Fd()), "", unix.AT_EMPTY_PATH, &attr); err != nil {
				return fmt.Errorf("set nodev on the container's overlay: %w", err)
			}
			if err := unix.MoveMount(int(mnt.Fd()), "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
				return fmt.Errorf("attach the overlay on the host side: %w", err)
			}
			var st unix.Stat_t
			if err := unix.Stat(filepath.Join(target, "new-file"), &st); err != nil {
				return err
			}
			if st.Uid != hostID || st.Gid != hostID {
				return fmt.Errorf("host sees new-file owned by %d:%d, want %d:%d", st.Uid, st.Gid, hostID, hostID)
			}
			// Host root is not mapped in the upper layer's idmap: it cannot
			// create files in the overlay (so the container's first
			// process makes the mount points, as lodge does already).
			if err := unix.Mkdir(filepath.Join(target, "by-host"), 0o755); err != unix.EOVERFLOW {
				return fmt.Errorf("host root's mkdir in the overlay: %v, want EOVERFLOW", err)
			}
			return unix.Unmount(target, unix.MNT_DETACH)
		}()
	}()
	if err := <-errc; err != nil {
		t.Error(err)
	}
}

// TestUpperMustBeIdmapped: with a plain (not idmapped) upper layer the overlay
// still mounts, but read-only (it cannot create its work directory, EACCES in
// the kernel log): a backend must check that a write works.
func TestUpperMustBeIdmapped(t *testing.T) {
	requireRoot(t)
	c := startContainer(t, "fd")
	lower, base, _ := layers(t, c, false)
	res, _ := c.exchange(t, lower, base)
	if res["mount"] != "ok" || res["create new-file"] != "read-only file system" {
		t.Errorf("mount = %q, create = %q; want ok and a read-only file system", res["mount"], res["create new-file"])
	}
}

// TestUserxattrRequired: without userxattr the overlay mounts and files can be
// written, but it cannot set its trusted.* xattrs: a directory removed and made
// again fails with EIO.
func TestUserxattrRequired(t *testing.T) {
	requireRoot(t)
	c := startContainer(t, "nouserxattr")
	lower, base, _ := layers(t, c, true)
	res, _ := c.exchange(t, lower, base)
	if res["mount"] != "ok" || res["mkdir dir-del again"] != "input/output error" {
		t.Errorf("mount = %q, mkdir over a whiteout = %q; want ok and EIO", res["mount"], res["mkdir dir-del again"])
	}
}

// describe is "uid:gid mode type" of a file, with the device numbers of a
// character device.
func describe(path string) string {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return err.Error()
	}
	d := fmt.Sprintf("%d:%d %o ", st.Uid, st.Gid, st.Mode&07777)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		return d + "reg"
	case unix.S_IFDIR:
		return d + "dir"
	case unix.S_IFCHR:
		return d + fmt.Sprintf("chr %d/%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
	return d + "other"
}

func xattr(path, name string) string {
	buf := make([]byte, 256)
	n, err := unix.Lgetxattr(path, name, buf)
	if err != nil {
		return err.Error()
	}
	if name == "security.capability" {
		return fmt.Sprintf("%x", buf[:n])
	}
	return string(buf[:n])
}

// TestOptions records which overlay features work in a user namespace with
// userxattr, and what they change.
func TestOptions(t *testing.T) {
	requireRoot(t)
	const noRedirect = "ok; invalid cross-device link" // mv of a lower directory copies it
	// index=on and nfs_export=on fall back to off (the kernel log says the upper
	// "does not support file handles"), xino=on is ignored (one filesystem).
	want := map[string]string{
		"path":            noRedirect, // layers as /proc/self/fd/N strings
		"index=on":        noRedirect,
		"redirect_dir=on": "create the overlay: invalid argument; ", // conflicts with userxattr
		"metacopy=on":     "create the overlay: invalid argument; ", // conflicts with userxattr
		"xino=on":         noRedirect,
		"nfs_export=on":   noRedirect,
	}
	for _, opt := range []string{"path", "index=on", "redirect_dir=on", "metacopy=on", "xino=on", "nfs_export=on"} {
		t.Run(opt, func(t *testing.T) {
			c := startContainer(t, opt)
			lower, base, _ := layers(t, c, true)
			res, _ := c.exchange(t, lower, base)
			got := res["mount"] + "; " + res["rename dir-ren"]
			if got != want[opt] {
				t.Errorf("%s: mount; rename of a lower directory = %q, want %q", opt, got, want[opt])
			}
		})
	}
}

// TestPropagatedLayers: the host attaches the idmapped layers below the
// stage's shared mount point (as lodge's stage hands over the root tree), so
// they reach the container's mount namespace locked: container root can
// neither make the image's mount writable nor unmount it, and overlay still
// accepts the locked mounts as layers.
func TestPropagatedLayers(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	lowerDir, ctDir := filepath.Join(dir, "image"), filepath.Join(dir, "ct")
	image(t, lowerDir)
	containerDir(t, ctDir)
	// The container's root (a host uid of its own) walks to the stage's
	// shared mount by path here; lodge's child reaches it the same way.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	stageDir := filepath.Join(dir, "stage")
	if err := os.Mkdir(stageDir, 0o755); err != nil {
		t.Fatal(err)
	}
	shared := filepath.Join(stageDir, "s")
	ready, done := make(chan error), make(chan struct{})
	attach, attached := make(chan *os.File), make(chan error)
	var c *container
	go func() {
		runtime.LockOSThread() // never unlocked: the stage dies with its thread
		ready <- func() error {
			if err := unix.Unshare(unix.CLONE_NEWNS | unix.CLONE_FS); err != nil {
				return err
			}
			if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
				return err
			}
			if err := unix.Mount("tmpfs", stageDir, "tmpfs", 0, "mode=755,size=16k"); err != nil {
				return err
			}
			if err := os.Mkdir(shared, 0o755); err != nil {
				return err
			}
			if err := unix.Mount(shared, shared, "", unix.MS_BIND, ""); err != nil {
				return err
			}
			if err := unix.Mount("", shared, "", unix.MS_SHARED, ""); err != nil {
				return err
			}
			var err error
			c, err = spawn("propagated:" + shared)
			if err != nil {
				return err
			}
			userns, err := os.Open("/proc/" + strconv.Itoa(c.cmd.Process.Pid) + "/ns/user")
			if err != nil {
				return err
			}
			defer userns.Close()
			for name, src := range map[string]string{"lower": lowerDir, "ct": ctDir} {
				layer, err := IdmapLayer(src, userns, name == "lower")
				if err != nil {
					return err
				}
				defer layer.Close()
				if err := os.Mkdir(filepath.Join(shared, name), 0o755); err != nil {
					return err
				}
				if err := unix.MoveMount(int(layer.Fd()), "", unix.AT_FDCWD, filepath.Join(shared, name), unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
					return err
				}
			}
			return nil
		}()
		for {
			select {
			case mnt := <-attach:
				attached <- func() error {
					root := filepath.Join(shared, "root")
					if err := os.Mkdir(root, 0o755); err != nil {
						return err
					}
					attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_NODEV}
					if err := unix.MountSetattr(int(mnt.Fd()), "", unix.AT_EMPTY_PATH, &attr); err != nil {
						return err
					}
					return unix.MoveMount(int(mnt.Fd()), "", unix.AT_FDCWD, root, unix.MOVE_MOUNT_F_EMPTY_PATH)
				}()
			case <-done:
				return
			}
		}
	}()
	err := <-ready
	if c != nil {
		t.Cleanup(func() { c.stop(t); close(done) })
	} else {
		close(done)
	}
	if err != nil {
		t.Fatal(err)
	}
	res, mnt := c.exchange(t)
	for k, v := range map[string]string{
		"mount":                            "ok",
		"clear ro of the propagated lower": "operation not permitted",
		"unmount the propagated lower":     "ok",
		"overlay works after":              "ok",
		"create new-file":                  "ok",
		"unlink del-me":                    "ok",
	} {
		if res[k] != v {
			t.Errorf("inside: %s = %q, want %q", k, res[k], v)
		}
	}
	if got := describe(filepath.Join(ctDir, "upper/new-file")); got != "0:0 644 reg" {
		t.Errorf("on disk: upper/new-file = %q, want natural ids", got)
	}
	if mnt == nil {
		t.Fatal("no overlay mount from the container")
	}
	// The stage attaches the overlay below its shared mount point, with
	// nodev, as it hands over the root tree: the copy that reaches the
	// container is writable and its flags are locked.
	attach <- mnt
	if err := <-attached; err != nil {
		t.Fatalf("stage: attach the container's overlay: %v", err)
	}
	back := c.roundTrip(t)
	for k, v := range map[string]string{
		"stat root/new-file":      "0:0",
		"clear nodev of the root": "operation not permitted",
		"write in the root":       "ok",
	} {
		if back[k] != v {
			t.Errorf("inside, after the stage: %s = %q, want %q", k, back[k], v)
		}
	}
	if got := describe(filepath.Join(ctDir, "upper/via-stage")); got != "0:0 644 reg" {
		t.Errorf("on disk: upper/via-stage = %q, want natural ids", got)
	}
}

// roundTrip tells the child to go on and returns its next report.
func (c *container) roundTrip(t *testing.T) result {
	t.Helper()
	if err := unix.Sendmsg(c.sock, []byte("go"), nil, nil, 0); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<16)
	n, _, _, _, err := unix.Recvmsg(c.sock, buf, nil, 0)
	if err != nil || n == 0 {
		t.Fatalf("no answer from the container's process: %v", err)
	}
	res := result{}
	if err := json.Unmarshal(buf[:n], &res); err != nil {
		t.Fatal(err)
	}
	return res
}

// TestStackedLayers: a container's upper layer, once frozen, is a lower
// layer of a clone (lowers: its upper, then the image). Its whiteouts and
// opaque directories, made in a user namespace, work as lower layers too.
func TestStackedLayers(t *testing.T) {
	requireRoot(t)
	c1 := startContainer(t, "fd")
	lower, base, upper1 := layers(t, c1, true)
	if res, _ := c1.exchange(t, lower, base); res["mount"] != "ok" {
		t.Fatalf("first container: %s", res["mount"])
	}
	c1.stop(t)
	c2 := startContainer(t, "fd")
	userns := c2.userns(t)
	frozen, err := IdmapLayer(upper1, userns, true)
	if err != nil {
		t.Fatal(err)
	}
	defer frozen.Close()
	image, err := IdmapLayer(filepath.Join(filepath.Dir(filepath.Dir(upper1)), "image"), userns, true)
	if err != nil {
		t.Fatal(err)
	}
	defer image.Close()
	ct2 := filepath.Join(t.TempDir(), "ct2")
	containerDir(t, ct2)
	base2, err := IdmapLayer(ct2, userns, false)
	if err != nil {
		t.Fatal(err)
	}
	defer base2.Close()
	res, _ := c2.exchange(t, frozen, image, base2)
	for k, v := range map[string]string{
		"mount":                    "ok",
		"stat new-file (before)":   "0:0 644",
		"stat del-me (before)":     "no such file or directory",
		"dir-del entries (before)": "[]",
		"stat lower bin/su":        "0:0 4711",
		"write etc/hostname":       "ok",
	} {
		if res[k] != v {
			t.Errorf("clone: %s = %q, want %q", k, res[k], v)
		}
	}
	// Writing etc/hostname copied it up from the frozen layer.
	if got := describe(filepath.Join(ct2, "upper/etc/hostname")); got != "0:0 644 reg" {
		t.Errorf("on disk: clone's upper/etc/hostname = %q, want natural ids", got)
	}
}

// TestLoopUpper: the disk limit that works on this kernel (no project
// quotas): the upper and work directories on a small ext4 image of the
// container's own. It is loop-mounted in a thread's private mount namespace
// (as the monitor's stage could), idmapped, and the namespace is dropped: the
// detached layer keeps the filesystem. Inside, df shows its size and writes
// past it fail with ENOSPC.
func TestLoopUpper(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("mkfs.ext4"); err != nil {
		t.Skip("needs mkfs.ext4 (e2fsprogs)")
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.ext4")
	lowerDir := filepath.Join(dir, "image")
	image(t, lowerDir)
	if out, err := exec.Command("truncate", "-s", "64M", img).CombinedOutput(); err != nil {
		t.Fatalf("truncate: %v: %s", err, out)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-m", "0", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	c := startContainer(t, "fill")
	userns := c.userns(t)
	lower, err := IdmapLayer(lowerDir, userns, true)
	if err != nil {
		t.Fatal(err)
	}
	defer lower.Close()
	mountDir := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mountDir, 0o755); err != nil {
		t.Fatal(err)
	}
	result := make(chan *os.File)
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the namespace goes with the thread
		base, err := func() (*os.File, error) {
			if err := unix.Unshare(unix.CLONE_NEWNS | unix.CLONE_FS); err != nil {
				return nil, err
			}
			if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
				return nil, err
			}
			// mount(8) sets up the loop device with autoclear: it goes
			// when the last reference to the filesystem does.
			if out, err := exec.Command("mount", "-o", "loop", img, mountDir).CombinedOutput(); err != nil {
				return nil, fmt.Errorf("mount %s: %v: %s", img, err, out)
			}
			for _, d := range []string{"ct/upper", "ct/work"} {
				if err := os.MkdirAll(filepath.Join(mountDir, d), 0o755); err != nil {
					return nil, err
				}
			}
			return IdmapLayer(filepath.Join(mountDir, "ct"), userns, false)
		}()
		errc <- err
		result <- base
	}()
	err = <-errc
	base := <-result
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	res, _ := c.exchange(t, lower, base)
	t.Logf("inside: df size %s MiB, filling: %s", res["df size MiB"], res["fill"])
	if res["mount"] != "ok" || res["fill"] != "no space left on device" {
		t.Errorf("mount = %q, fill = %q; want ok and ENOSPC", res["mount"], res["fill"])
	}
	// Layers on two filesystems: Mount adds xino=on, so a lower file has
	// the overlay's st_dev, as inotify names it (checkpoints need that).
	if got := res["lower file on the overlay's st_dev"]; got != "true" {
		t.Errorf("a lower file on the overlay's st_dev: %q, want true", got)
	}
	if size, _ := strconv.Atoi(res["df size MiB"]); size < 40 || size > 64 {
		t.Errorf("df inside shows %q MiB, want about 64", res["df size MiB"])
	}
}

// TestFileCapabilities: a capability set inside (revision 2, as setcap
// writes it) is stored with natural root id 0 and works: the file run by a
// non-root user of the container gets exactly cap_net_raw.
func TestFileCapabilities(t *testing.T) {
	requireRoot(t)
	c := startContainer(t, "capexec")
	lower, base, upperDir := layers(t, c, true)
	// A setuid-root program of the image (a copy of this binary).
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	suid := filepath.Join(filepath.Dir(filepath.Dir(upperDir)), "image/bin/suidbin")
	if err := os.WriteFile(suid, self, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Chmod(suid, 0o4755); err != nil {
		t.Fatal(err)
	}
	res, _ := c.exchange(t, lower, base)
	// uid 1000 runs: the capbin (cap_net_raw = bit 13 only, uids unchanged),
	// then the image's setuid-root program (effective uid 0, all the
	// capabilities: a new user namespace starts with a full bounding set).
	last, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(last)))
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("Uid:1000,1000,1000,1000 CapEff:0000000000002000; Uid:1000,0,0,0 CapEff:%016x", uint64(1)<<(n+1)-1)
	if res["mount"] != "ok" || res["capexec"] != want {
		t.Errorf("mount = %q, run as uid 1000: %q; want ok and %q", res["mount"], res["capexec"], want)
	}
}
