package manager

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"lodge/internal/testreq"
)

// A process at the host's root has not left it (exec must refuse such an
// "init"); one chrooted elsewhere has; a pid that names nothing counts as
// having left, leaving the refusal to exec's own checks.
func TestLeftHostRoot(t *testing.T) {
	if leftHostRoot(os.Getpid()) {
		t.Errorf("this test process counts as having left its own root")
	}
	if !leftHostRoot(1 << 30) {
		t.Errorf("a pid that names no process counts as still at the host's root")
	}
	if os.Geteuid() != 0 {
		testreq.Skip(t, "root", "chroot needs root; the chrooted case was not checked")
	}
	dir := t.TempDir()
	data, err := os.ReadFile("/bin/busybox") // static (busybox-static, make deps)
	if err != nil {
		t.Fatalf("no static busybox to run chrooted (make deps installs busybox-static): %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/busybox", "sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: dir}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start a chrooted busybox: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if !leftHostRoot(cmd.Process.Pid) {
		t.Errorf("a process chrooted to %s counts as still at the host's root", dir)
	}
}
