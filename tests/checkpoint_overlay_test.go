package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// A stock Debian with systemd on overlay storage (the default for images),
// checkpointed with --stop and restored: running, no failed unit, journald
// and logind answer, as on dir storage (TestCheckpointRestoreDebian). Its
// daemons' inotify watches on the overlay cannot be saved as file handles
// (an overlay mounted in a user namespace decodes none): the dump finds
// their paths first (migrate's irmap cache), and the restore watches the
// same files again. With limits.disk the upper layer is on the container's
// own filesystem, and the overlay needs xino to give the watched files the
// st_dev that inotify reports.
func TestCheckpointRestoreDebianOverlay(t *testing.T) {
	needCRIU(t)
	for name, config := range map[string][]string{
		"one-filesystem": nil,
		"disk-limit":     {"-c", "limits.disk=512MiB"},
	} {
		t.Run(name, func(t *testing.T) { checkpointRestoreDebianOverlay(t, config) })
	}
}

func checkpointRestoreDebianOverlay(t *testing.T, config []string) {
	e := newEnv(t)
	e.useStorage("overlay")
	e.must(append([]string{"create", "dov", "--template", "debian"}, config...)...)
	e.must("start", "dov")
	waitRunning(t, e, "dov")
	before := dbusWatches(t, e, "dov")
	e.must("checkpoint", "dov", "--stop")
	caches, _ := filepath.Glob(filepath.Join(e.root, "containers", "dov", "checkpoints", "*", "irmap-cache"))
	if len(caches) != 1 {
		t.Errorf("the checkpoint has %d irmap caches, want 1", len(caches))
	}
	e.must("restore", "dov")
	if state := strings.TrimSpace(e.run("exec", "dov", "--", "systemctl", "is-system-running").stdout); state != "running" {
		t.Errorf("after restore systemd is %q", state)
	}
	if failed := e.must("exec", "dov", "--", "systemctl", "--failed", "--no-legend"); strings.TrimSpace(failed) != "" {
		t.Errorf("failed units after restore:\n%s", failed)
	}
	if after := dbusWatches(t, e, "dov"); after != before {
		t.Errorf("dbus-daemon watches %q after the restore, %q before", after, before)
	}
	e.must("exec", "dov", "--", "journalctl", "-n", "1", "--no-pager")
	e.must("exec", "dov", "--", "loginctl", "list-sessions", "--no-legend")
	e.must("stop", "dov")
	e.assertNoLeftovers("dov")
}

// dbusWatches is the inodes that dbus-daemon of container name watches
// with inotify (its configuration directories on the overlay), read from
// its fdinfo on the host: inside, a restored process's /proc/PID/fd is
// closed to the container's root.
func dbusWatches(t *testing.T, e *env, name string) string {
	t.Helper()
	var watches []string
	queue := []int{e.info(name).PID}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
		for _, task := range tasks {
			data, _ := os.ReadFile(task)
			for _, f := range strings.Fields(string(data)) {
				n, _ := strconv.Atoi(f)
				queue = append(queue, n)
			}
		}
		if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) != "dbus-daemon" {
			continue
		}
		infos, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fdinfo/*", pid))
		for _, info := range infos {
			data, _ := os.ReadFile(info)
			for _, line := range strings.Split(string(data), "\n") {
				if !strings.HasPrefix(line, "inotify ") {
					continue
				}
				for _, field := range strings.Fields(line) {
					if ino, ok := strings.CutPrefix(field, "ino:"); ok {
						watches = append(watches, ino)
					}
				}
			}
		}
	}
	if len(watches) == 0 {
		t.Fatalf("no dbus-daemon of %s watches anything", name)
	}
	sort.Strings(watches)
	return strings.Join(watches, " ")
}
