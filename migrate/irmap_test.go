package migrate

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/fh"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
)

// irmapHolderEnv makes the test binary a process whose root is an overlay
// (ROOT given in the variable), holding inotify watches on it, as a
// container's daemons do on overlay storage.
const irmapHolderEnv = "LODGE_IRMAP_TEST_HOLDER"

func init() {
	if dir := os.Getenv(irmapHolderEnv); dir != "" {
		if err := irmapHolder(dir); err != nil {
			fmt.Println("holder:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

// irmapHolder mounts an overlay of dir's lower, upper and work at dir/root
// (in its own mount namespace), with a tmpfs at /run inside, chroots into
// it, watches /, a deep directory, a file and /run, says "ready" and waits
// for its stdin to close.
func irmapHolder(dir string) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return err
	}
	root := filepath.Join(dir, "root")
	opts := fmt.Sprintf("lowerdir=%s/lower,upperdir=%s/upper,workdir=%s/work", dir, dir, dir)
	if err := unix.Mount("overlay", root, "overlay", 0, opts); err != nil {
		return fmt.Errorf("mount the overlay: %w", err)
	}
	if err := unix.Mount("tmpfs", root+"/run", "tmpfs", 0, "size=64k"); err != nil {
		return err
	}
	if err := unix.Chroot(root); err != nil {
		return err
	}
	if err := os.Chdir("/"); err != nil {
		return err
	}
	in, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		return err
	}
	for _, p := range []string{"/", "/usr/share/deep/dir", "/etc/watched", "/run"} {
		if _, err := unix.InotifyAddWatch(in, p, unix.IN_MODIFY|unix.IN_CREATE); err != nil {
			return fmt.Errorf("watch %s: %w", p, err)
		}
	}
	fmt.Println("ready")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	return nil
}

// TestIrmapCacheOfOverlayRoot: the watches of a process whose root is an
// overlay are written as CRIU's irmap-cache image, with their paths; the
// one on the tmpfs mounted inside (its handles open) is left out.
func TestIrmapCacheOfOverlayRoot(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	for _, d := range []string{"lower/usr/share/deep/dir", "lower/etc", "lower/run", "upper", "work", "root"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "lower/etc/watched"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), irmapHolderEnv+"="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS}
	runHolder(t, cmd, "irmap") // the preflight tests' start, ready and clean-up

	images := t.TempDir()
	n, err := writeIrmapCache(images, cmd.Process.Pid)
	if err != nil || n != 3 {
		t.Fatalf("writeIrmapCache: %d entries, %v; want 3", n, err)
	}
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/root", cmd.Process.Pid), &st); err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, e := range readIrmapImage(t, filepath.Join(images, "irmap-cache")) {
		if e.GetDev() != kernelDev(st.Dev) {
			t.Errorf("%s: dev %#x, the overlay's is %#x", e.GetPath(), e.GetDev(), kernelDev(st.Dev))
		}
		var fst unix.Stat_t
		if err := unix.Lstat(fmt.Sprintf("/proc/%d/root%s", cmd.Process.Pid, e.GetPath()), &fst); err != nil || fst.Ino != e.GetInode() {
			t.Errorf("%s: inode %d, the file's is %d (%v)", e.GetPath(), e.GetInode(), fst.Ino, err)
		}
		paths = append(paths, e.GetPath())
	}
	sort.Strings(paths)
	if got := strings.Join(paths, " "); got != "/. /etc/watched /usr/share/deep/dir" {
		t.Errorf("irmap cache paths: %s", got)
	}
}

// TestIrmapCacheSkipsOtherRoots: a root that is not an overlay (dir
// storage: its handles open) gets no irmap cache.
func TestIrmapCacheSkipsOtherRoots(t *testing.T) {
	needRoot(t)
	var sfs unix.Statfs_t
	if err := unix.Statfs("/", &sfs); err != nil || sfs.Type == overlayfsMagic {
		t.Skip("the host's own root is an overlay")
	}
	images := t.TempDir()
	if n, err := writeIrmapCache(images, os.Getpid()); n != 0 || err != nil {
		t.Errorf("writeIrmapCache of a process on the host's root: %d, %v", n, err)
	}
	if _, err := os.Stat(filepath.Join(images, "irmap-cache")); err == nil {
		t.Error("an irmap cache was written for a root that is no overlay")
	}
}

func TestParseWatch(t *testing.T) {
	for line, want := range map[string]string{
		"inotify wd:1 ino:e043d sdev:3a mask:2c8 ignored_mask:0 fhandle-bytes:c fhandle-type:81 f_handle:3d040e0000000000": "3a:e043d",
		"fanotify ino:9b2305 sdev:800001 mflags:0 mask:1 ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:0523":      "800001:9b2305",
		"fanotify flags:0 event-flags:0": "none",
		"pos:\t0":                        "none",
		"inotify wd:2 ino:zz sdev:3a":    "none",
	} {
		got := "none"
		if w, ok := parseWatch(line); ok {
			got = fmt.Sprintf("%x:%x", w.dev, w.ino)
		}
		if got != want {
			t.Errorf("parseWatch(%q) = %s, want %s", line, got, want)
		}
	}
}

// readIrmapImage decodes an irmap-cache image as CRIU reads it.
func readIrmapImage(t *testing.T, path string) []*fh.IrmapCacheEntry {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) < 8 || binary.LittleEndian.Uint32(data) != imgServiceMagic || binary.LittleEndian.Uint32(data[4:]) != irmapCacheMagic {
		t.Fatalf("irmap cache image starts with % x", data[:min(8, len(data))])
	}
	var out []*fh.IrmapCacheEntry
	for rest := data[8:]; len(rest) > 0; {
		if len(rest) < 4 {
			t.Fatalf("truncated entry size: % x", rest)
		}
		size := binary.LittleEndian.Uint32(rest)
		if uint32(len(rest)-4) < size {
			t.Fatalf("entry of %d bytes, %d left", size, len(rest)-4)
		}
		e := &fh.IrmapCacheEntry{}
		if err := proto.Unmarshal(rest[4:4+size], e); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
		rest = rest[4+size:]
	}
	return out
}
