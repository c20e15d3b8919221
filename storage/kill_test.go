package storage

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The killed-copy tests run a copy in a child process (this test binary,
// re-run with killChildEnv set) and kill -9 it part way: the child prints
// one line when its copy has made the asked number of entries, and waits.

const killChildEnv = "LODGE_STORAGE_KILL_CHILD"

func TestMain(m *testing.M) {
	if op := os.Getenv(killChildEnv); op != "" {
		os.Exit(killChild(op))
	}
	os.Exit(m.Run())
}

// killChild runs op (copy or restore) from $SRC to $DST, announcing on
// stdout when $AT entries are made, then pausing until it is killed.
func killChild(op string) int {
	if strings.HasPrefix(op, "overlay-") {
		return killOverlayChild(op)
	}
	at, _ := strconv.ParseInt(os.Getenv("AT"), 10, 64)
	progress := func(p Progress) {
		if p.Files == at {
			fmt.Println("reached", p.Files, "of", p.TotalFiles)
			time.Sleep(time.Hour) // hold here: the parent kills us mid-copy
		}
	}
	opts := Options{Workers: 1, Progress: progress}
	var err error
	switch op {
	case "copy":
		err = Dir{}.Clone(context.Background(), os.Getenv("SRC"), os.Getenv("DST"), opts)
	case "restore":
		err = Dir{}.Restore(context.Background(), os.Getenv("SRC"), os.Getenv("DST"), opts)
	default: // the btrfs backend's kill tests (btrfs_backend_test.go)
		err = btrfsKillChild(op)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// runKilled runs op in a child of this test binary with env added, waits
// for the first line it prints (it prints one at its kill point) and kills
// it with SIGKILL. It returns that line, whether SIGKILL is what ended the
// child, and the error of reading the line (the child ended first).
func runKilled(t *testing.T, op string, env ...string) (string, bool, error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), killChildEnv+"="+op), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, readErr := bufio.NewReader(out).ReadString('\n')
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	return line, ok && ws.Signal() == syscall.SIGKILL, readErr
}

// killAt runs op in a child and kills it with SIGKILL once at entries are made.
func killAt(t *testing.T, op, src, dst string, at int) {
	t.Helper()
	line, killed, err := runKilled(t, op, "SRC="+src, "DST="+dst, "AT="+strconv.Itoa(at))
	if err != nil {
		t.Fatalf("%s child ended before reaching %d entries: %v", op, at, err)
	}
	if !killed {
		t.Fatalf("%s child was not killed by SIGKILL", op)
	}
	t.Logf("%s killed: %s", op, line)
}

// TestCopyKilledLeavesNoTarget: a copy killed -9 at several points leaves
// no target, only a temporary tree that RemoveStale takes away; a retry
// then makes a faithful copy.
func TestCopyKilledLeavesNoTarget(t *testing.T) {
	needRoot(t)
	base := t.TempDir()
	src, dst := filepath.Join(base, "src"), filepath.Join(base, "dst")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	makeTree(t, src)
	manyFiles(t, filepath.Join(src, "many"), 100, 1000)
	for _, at := range []int{1, 20, 60, 130} {
		killAt(t, "copy", src, dst, at)
		if _, err := os.Lstat(dst); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("killed at %d entries: the target exists (%v)", at, err)
		}
		if err := RemoveStale(base); err != nil {
			t.Fatal(err)
		}
		assertNoTemp(t, base)
	}
	if err := (Dir{}).Clone(context.Background(), src, dst, Options{}); err != nil {
		t.Fatal(err)
	}
	compareTrees(t, src, dst)
}

// TestRestoreKilledLeavesOldTree: a restore killed -9 while copying the
// snapshot leaves the container's tree exactly as it was.
func TestRestoreKilledLeavesOldTree(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	base := t.TempDir()
	rootfs, snap, ref := filepath.Join(base, "rootfs"), filepath.Join(base, "snap"), filepath.Join(base, "reference")
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	makeTree(t, rootfs)
	if err := (Dir{}).Snapshot(ctx, rootfs, snap, Options{}); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(rootfs, "after-snapshot"), []byte("new"), 0o644)
	manyFiles(t, filepath.Join(snap, "many"), 100, 1000)
	if err := (Dir{}).Snapshot(ctx, rootfs, ref, Options{}); err != nil {
		t.Fatal(err)
	}
	for _, at := range []int{1, 50, 120} {
		killAt(t, "restore", snap, rootfs, at)
		compareTrees(t, ref, rootfs)
		if err := RemoveStale(base); err != nil {
			t.Fatal(err)
		}
		assertNoTemp(t, base)
	}
	if err := (Dir{}).Restore(ctx, snap, rootfs, Options{}); err != nil {
		t.Fatal(err)
	}
	compareTrees(t, snap, rootfs)
}
