package tests

// What a CRIU checkpoint of a lodge container needs from the rest of lodge
// (issue 12, ../shared/PITFALLS.md 24a), tested without CRIU: every exec'd
// command in a session of the container's, no descriptor of lodge's caller
// in the container or its supervisors, a boot_id that is a real file, and no
// Debian service in a UTS namespace of its own.

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"lodge/network"
)

// TestDebianNoNestedUTS: the Debian template turns ProtectHostname off for
// every service (CRIU cannot dump a nested UTS namespace), and systemd still
// boots to "running" with no failed unit.
func TestDebianNoNestedUTS(t *testing.T) {
	e := newEnv(t)
	e.must("create", "d1", "--template", "debian")
	e.must("start", "d1")
	waitRunning(t, e, "d1")
	if failed := e.must("exec", "d1", "--", "systemctl", "--failed", "--no-legend"); strings.TrimSpace(failed) != "" {
		t.Errorf("failed units:\n%s", failed)
	}
	// Those that have ProtectHostname=yes in bookworm's unit files.
	for _, unit := range []string{"systemd-logind", "systemd-localed", "systemd-timedated"} {
		if got := strings.TrimSpace(e.must("exec", "d1", "--", "systemctl", "show", "-p", "ProtectHostname", unit)); got != "ProtectHostname=no" {
			t.Errorf("%s: %s, want ProtectHostname=no", unit, got)
		}
	}
	// No process of the container in a UTS namespace other than init's
	// (localed and timedated start on demand: ask them something first).
	e.must("exec", "d1", "--", "busctl", "get-property", "org.freedesktop.locale1", "/org/freedesktop/locale1", "org.freedesktop.locale1", "Locale")
	e.must("exec", "d1", "--", "busctl", "get-property", "org.freedesktop.timedate1", "/org/freedesktop/timedate1", "org.freedesktop.timedate1", "Timezone")
	out := e.must("exec", "d1", "--", "sh", "-c", `init=$(readlink /proc/1/ns/uts); for p in /proc/[0-9]*; do u=$(readlink $p/ns/uts) || continue; [ "$u" = "$init" ] || echo "$(cat $p/comm) ${p#/proc/} $u"; done`)
	if strings.TrimSpace(out) != "" {
		t.Errorf("processes in a UTS namespace of their own (CRIU cannot dump them):\n%s", out)
	}
}

// TestExecOwnSession: a command of lodge exec leads a session of its own in
// the container, with a pty and without, whatever session lodge's caller has:
// CRIU refuses a process whose session leader is outside the container's pid
// namespace ("A session leader of PID is outside of its pid namespace"), and
// the container's /proc shows such a session as 0. A process the command
// leaves behind keeps the command's session, also the container's.
func TestExecOwnSession(t *testing.T) {
	e := newEnv(t)
	e.createBusybox("ses1")
	e.must("start", "ses1")

	// The caller in its own session with a terminal of the host's, as in
	// an SSH login: -t (a container pty) and -T (the caller's streams).
	for _, mode := range []string{"-t", "-T"} {
		t.Run("caller with a terminal "+mode, func(t *testing.T) {
			master, slave := openPty(t)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := e.command(ctx, "exec", "ses1", mode, "--", "cat", "/proc/self/stat")
			cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			slave.Close()
			output, _ := io.ReadAll(master) // EIO once lodge exits
			if err := cmd.Wait(); err != nil {
				t.Fatalf("lodge exec %s: %v\n%s", mode, err, output)
			}
			checkOwnSession(t, string(output))
		})
	}
	// The caller without a terminal, in the test's session.
	for _, mode := range []string{"-t", "-T"} {
		t.Run("caller with pipes "+mode, func(t *testing.T) {
			checkOwnSession(t, e.must("exec", "ses1", mode, "--", "cat", "/proc/self/stat"))
		})
	}

	// Left behind by a command that has ended: its session is still one of
	// the container's.
	pid := strings.TrimSpace(e.must("exec", "ses1", "-T", "--", "sh", "-c", "sleep 600 </dev/null >/dev/null 2>&1 & echo $!"))
	ppid, pgrp, sid := statIDs(t, e.must("exec", "ses1", "--", "cat", "/proc/"+pid+"/stat"))
	if sid == "0" || pgrp == "0" {
		t.Errorf("left-behind process %s: session %s, process group %s: outside the container", pid, sid, pgrp)
	}
	if ppid != "1" {
		t.Errorf("left-behind process %s has parent %s, want the container's init", pid, ppid)
	}
}

// checkOwnSession checks that /proc/self/stat of a command (as the container
// shows it) says it leads its session and process group.
func checkOwnSession(t *testing.T, stat string) {
	t.Helper()
	stat = strings.TrimSpace(stat)
	pid, _, _ := strings.Cut(stat, " ")
	_, pgrp, sid := statIDs(t, stat)
	if sid != pid || pgrp != pid || pid == "0" {
		t.Errorf("command %s: session %s, process group %s; want its own session (%s), led in the container:\n%s", pid, sid, pgrp, pid, stat)
	}
}

// statIDs returns the parent, process group and session of a /proc/PID/stat.
func statIDs(t *testing.T, stat string) (ppid, pgrp, sid string) {
	t.Helper()
	i := strings.LastIndexByte(stat, ')')
	fields := strings.Fields(stat[i+1:])
	if i < 0 || len(fields) < 4 {
		t.Fatalf("not a /proc/PID/stat: %q", stat)
	}
	return fields[1], fields[2], fields[3]
}

// TestStartLeaksNoDescriptor: descriptors lodge's caller left open (not
// close-on-exec) reach no process lodge starts: not the monitor, init,
// getty or what rcS starts, not the views server or its supervisor, not
// dnsmasq or its supervisor, not an exec'd command or what it leaves behind.
// CRIU cannot dump a container holding a host file it cannot reach, and
// root in the container could read it through /proc/PID/fd. Every process of
// the host is searched, so that no process lodge starts is overlooked.
func TestStartLeaksNoDescriptor(t *testing.T) {
	e := newEnv(t)
	leak := newLeak(t)
	config := []string{}
	if _, err := os.Stat(network.DnsmasqPath); err == nil {
		// With the leak: lodge network create starts the network's dnsmasq.
		leak.run(t, e, "network", "create", "fdnet")
		config = append(config, "network.0.network=fdnet")
	} else {
		t.Logf("no %s: dnsmasq not checked (apt-get install dnsmasq-base)", network.DnsmasqPath)
	}
	e.createBusybox("fd1", config...)
	leak.startWith(e, "fd1") // the first start starts the views server too
	leak.run(t, e, "exec", "fd1", "-T", "--", "sh", "-c", "sleep 600 </dev/null >/dev/null 2>&1 &")
	leak.run(t, e, "exec", "fd1", "-t", "--", "sh", "-c", "sleep 601 </dev/null >/dev/null 2>&1 &")
	waitUntil(t, "getty on the console", func() bool {
		return strings.Contains(e.must("exec", "fd1", "--", "ps"), "getty")
	})

	// The processes that must have been searched are there.
	i := e.info("fd1")
	views := e.must("lxcfs", "status", "--format", "json")
	searched := map[string]int{"init": i.PID, "monitor": i.MonitorPID}
	for _, key := range []string{"server_pid", "supervisor_pid"} {
		if n := regexp.MustCompile(`"` + key + `": *(\d+)`).FindStringSubmatch(views); n != nil {
			searched["views "+key], _ = strconv.Atoi(n[1])
		} else {
			t.Errorf("lodge lxcfs status has no %s: %s", key, views)
		}
	}
	if len(config) > 0 {
		searched["dnsmasq"] = e.dnsmasqOf("fdnet")
	}
	holders := map[int][]string{}
	self := os.Getpid()
	entries, _ := os.ReadDir("/proc")
	for _, d := range entries {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || pid == self {
			continue
		}
		links, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
		for _, link := range links {
			if target, _ := os.Readlink(link); strings.Contains(target, leak.marker) {
				comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
				holders[pid] = append(holders[pid], fmt.Sprintf("%s (%s) %s -> %s", d.Name(), strings.TrimSpace(string(comm)), link, target))
			}
		}
	}
	for what, pid := range searched {
		if pid <= 0 {
			t.Errorf("no %s found to search", what)
		} else if _, err := os.Stat(fmt.Sprintf("/proc/%d/fd", pid)); err != nil {
			t.Errorf("%s (pid %d): %v", what, pid, err)
		}
	}
	for _, h := range holders {
		t.Errorf("a descriptor of lodge's caller: %s", strings.Join(h, "; "))
	}
}

// TestBootIDFile: each boot of a container has a boot id of its own, stable
// while it runs and new after a reboot, bound from a real file,
// ROOT/run/NAME.boot_id (CRIU binds that file again at restore; a bind of an
// unlinked file comes back empty), which goes when the container stops, also
// when its monitor was killed and the stale state is cleaned up.
func TestBootIDFile(t *testing.T) {
	e := newEnv(t)
	e.createBusybox("bo1")
	e.must("start", "bo1")
	file := filepath.Join(e.root, "run", "bo1.boot_id")
	first := checkBootID(t, e, "bo1", file)
	if again := strings.TrimSpace(e.must("exec", "bo1", "--", "cat", "/proc/sys/kernel/random/boot_id")); again != first {
		t.Errorf("boot id changed while running: %s, then %s", first, again)
	}

	before := e.info("bo1").PID
	e.run("exec", "bo1", "--", "reboot")
	waitFor(t, e, "bo1", func(i info) bool { return i.State == "RUNNING" && i.PID != before && i.PID != 0 })
	if second := checkBootID(t, e, "bo1", file); second == first {
		t.Errorf("the boot id %s stayed the same across a reboot", first)
	}

	e.must("stop", "bo1")
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("after stop: %s: %v, want it gone", file, err)
	}
	e.assertNoLeftovers("bo1")

	// Monitor and init killed: the next lodge command that finds the
	// container stopped (stop, start, delete) removes what it left.
	e.must("start", "bo1")
	checkBootID(t, e, "bo1", file)
	i := e.info("bo1")
	for _, pid := range []int{i.MonitorPID, i.PID} {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "init and monitor gone", func() bool {
		return syscall.Kill(i.PID, 0) != nil && syscall.Kill(i.MonitorPID, 0) != nil
	})
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("the killed monitor's boot id file is not there to clean up: %v", err)
	}
	e.run("stop", "bo1") // not running: it cleans up
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("after the stale cleanup: %s: %v, want it gone", file, err)
	}
	e.assertNoLeftovers("bo1")
}

// checkBootID checks the running container's boot id: a UUID, not the
// host's, the content of file, and bound from file itself (mountinfo names
// it, not a deleted or unreachable file). It returns the id.
func checkBootID(t *testing.T, e *env, name, file string) string {
	t.Helper()
	id := strings.TrimSpace(e.must("exec", name, "--", "cat", "/proc/sys/kernel/random/boot_id"))
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(id) {
		t.Errorf("boot id %q is not a random UUID", id)
	}
	if id == hostBootID(t) {
		t.Errorf("the container has the host's boot id %s", id)
	}
	if data, err := os.ReadFile(file); err != nil || strings.TrimSpace(string(data)) != id {
		t.Errorf("%s: %q, %v; want the container's boot id %s", file, data, err, id)
	}
	var mount string
	for _, line := range strings.Split(e.must("exec", name, "--", "cat", "/proc/self/mountinfo"), "\n") {
		if fields := strings.Fields(line); len(fields) > 4 && fields[4] == "/proc/sys/kernel/random/boot_id" {
			mount = line // the last one is on top
		}
	}
	root := strings.Fields(mount + " - - - -")[3]
	if !strings.HasSuffix(root, "/run/"+name+".boot_id") {
		t.Errorf("boot_id is not bound from %s (mount root %q):\n%s", file, root, mount)
	}
	return id
}
