package tests

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// Migrations onto a host where the container's id range is taken: the
// target gives it a range of its own pool and rewrites the checkpoint's
// id maps (migrate.RemapImages). Both hosts have the same pool, as two
// hosts set up alike do, so each gives its first container the same range.

// idRange is an id range as lodge prints it ("524288-589823").
type idRange struct{ first, last uint32 }

func parseRange(t *testing.T, s string) idRange {
	t.Helper()
	a, b, ok := strings.Cut(s, "-")
	first, err1 := strconv.ParseUint(a, 10, 32)
	last, err2 := strconv.ParseUint(b, 10, 32)
	if !ok || err1 != nil || err2 != nil || last < first {
		t.Fatalf("id range %q", s)
	}
	return idRange{uint32(first), uint32(last)}
}

func (r idRange) contains(id uint32) bool { return id >= r.first && id <= r.last }
func (r idRange) String() string          { return fmt.Sprintf("%d-%d", r.first, r.last) }

// holdRange creates stopped containers on h until one holds range r, the
// one a container arriving there has: its migration must remap.
func holdRange(t *testing.T, h *host, r string) {
	t.Helper()
	for n := 0; n < 8; n++ {
		name := fmt.Sprintf("hold%d", n)
		if _, err := os.Stat(filepath.Join(h.root, "containers", name)); err == nil {
			continue
		}
		h.createBusybox(name)
		if h.info(name).IDMap == r {
			return
		}
	}
	t.Fatalf("no container of %s got the range %s", h.name, r)
}

// migrateRemapped migrates name from -> to, where its range is taken, with
// --format json, and checks that the result and the progress say it was
// remapped and that it has the new range on to. It returns the old and
// new ranges.
func migrateRemapped(t *testing.T, from, to *host, name string) (old, got idRange) {
	t.Helper()
	old = parseRange(t, from.info(name).IDMap)
	holdRange(t, to, old.String())
	r := from.run("migrate", name, to.name, "--format", "json")
	if r.code != 0 {
		t.Fatalf("lodge migrate %s %s on %s: %s\n%s's serve:\n%s", name, to.name, from.name, r, to.name, to.serveLogs())
	}
	t.Logf("%s -> %s:\n%s%s", from.name, to.name, r.stderr, r.stdout)
	var res struct {
		Downtime int64 `json:"downtime_ns"`
		IDRemap  *struct {
			From struct {
				HostID uint32 `json:"host_id"`
				Size   uint32 `json:"size"`
			} `json:"from"`
			To struct {
				HostID uint32 `json:"host_id"`
				Size   uint32 `json:"size"`
			} `json:"to"`
		} `json:"id_remap"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("--format json: %v\n%s", err, r.stdout)
	}
	if res.IDRemap == nil || res.Downtime <= 0 {
		t.Fatalf("the JSON result does not say the range was remapped:\n%s", r.stdout)
	}
	got = parseRange(t, to.info(name).IDMap)
	if res.IDRemap.From.HostID != old.first || res.IDRemap.To.HostID != got.first || res.IDRemap.To.Size != got.last-got.first+1 || got == old {
		t.Fatalf("the result says %+v; the range was %s on %s and is %s on %s", *res.IDRemap, old, from.name, got, to.name)
	}
	if want := fmt.Sprintf("the id range %s of %s is not free on the target: it gets %s there", old, name, got); !strings.Contains(r.stderr, want) {
		t.Errorf("the progress does not say %q:\n%s", want, r.stderr)
	}
	gone(t, from.env, name)
	if i := to.info(name); i.State != "RUNNING" {
		t.Fatalf("after the migration %s is %s on %s", name, i.State, to.name)
	}
	return old, got
}

// containerPIDs are the host pids of the processes in i's cgroups.
func containerPIDs(t *testing.T, i info) []int {
	t.Helper()
	seen := map[int]bool{}
	for _, dir := range i.Cgroups {
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			data, _ := os.ReadFile(p)
			for _, f := range strings.Fields(string(data)) {
				if pid, err := strconv.Atoi(f); err == nil {
					seen[pid] = true
				}
			}
			return nil
		})
	}
	var out []int
	for pid := range seen {
		out = append(out, pid)
	}
	if len(out) == 0 {
		t.Fatalf("no process in the cgroups of %s: %v", i.Name, i.Cgroups)
	}
	return out
}

// statusIDs are the ids of a /proc/PID/status (real, effective, saved and
// fs uids, then gids), and its Name.
func statusIDs(t *testing.T, status string) (name string, ids []uint32) {
	t.Helper()
	for _, line := range strings.Split(status, "\n") {
		k, v, _ := strings.Cut(line, ":")
		switch k {
		case "Name":
			name = strings.TrimSpace(v)
		case "Uid", "Gid":
			for _, f := range strings.Fields(v) {
				n, err := strconv.ParseUint(f, 10, 32)
				if err != nil {
					t.Fatalf("status line %q", line)
				}
				ids = append(ids, uint32(n))
			}
		}
	}
	if len(ids) != 8 {
		t.Fatalf("no Uid and Gid in a status:\n%s", status)
	}
	return name, ids
}

// checkHostIDs checks, on the host, that every process of container name on
// h runs with ids of range r only, and that its cgroups hold no owner of
// range old: the restore chowned them to r (cgroup.img). It returns the
// host ids of the process of each name.
func checkHostIDs(t *testing.T, h *host, name string, r, old idRange) map[string][]uint32 {
	t.Helper()
	i := h.info(name)
	if got := parseRange(t, i.IDMap); got != r {
		t.Fatalf("%s has %s on %s, not %s", name, got, h.name, r)
	}
	byName := map[string][]uint32{}
	for _, pid := range containerPIDs(t, i) {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue // exited meanwhile
		}
		comm, ids := statusIDs(t, string(data))
		for _, id := range ids {
			if !r.contains(id) {
				t.Errorf("process %d (%s) of %s runs with host id %d, outside its range %s:\n%s", pid, comm, name, id, r, data)
			}
		}
		byName[comm] = ids
	}
	owned := 0
	for _, dir := range i.Cgroups {
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			fi, err := d.Info()
			if err != nil {
				return nil
			}
			st := fi.Sys().(*syscall.Stat_t)
			if old.contains(st.Uid) || old.contains(st.Gid) {
				t.Errorf("%s is owned by %d:%d, of the range %s had before", p, st.Uid, st.Gid, name)
			}
			if r.contains(st.Uid) {
				owned++
			}
			return nil
		})
	}
	if owned == 0 {
		t.Errorf("nothing of the cgroups of %s is owned by its range %s: %v", name, r, i.Cgroups)
	}
	return byName
}

// statOf is path's owner as the host sees it.
func statOf(t *testing.T, path string) (uint32, uint32) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Uid, st.Gid
}

// onDisk finds file rel of container name's tree in h's root (the tree
// itself, or an overlay's upper layer).
func onDisk(t *testing.T, h *host, name, rel string) string {
	t.Helper()
	var found string
	filepath.WalkDir(filepath.Join(h.root, "containers", name, "rootfs"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && found == "" && strings.HasSuffix(p, "/"+rel) {
			found = p
		}
		return nil
	})
	if found == "" {
		t.Fatalf("%s of %s is not in its tree on %s", rel, name, h.name)
	}
	return found
}

// TestRemoteMigrateRemap: a busybox counting in memory goes h1 -> h2 ->
// h1 where its id range is taken each time (containers of the target hold
// it): the target gives it another range; the counter goes on, exec works,
// inside its init is uid 0, the host sees its processes, cgroups and the
// files on its tmpfs with the new range's ids, and files written after the
// move are on disk with the container's own ids (the idmapped tree).
func TestRemoteMigrateRemap(t *testing.T) {
	needCRIU(t)
	hs := newMigrationHosts(t)
	h1, h2 := hs.h1, hs.h2
	hs.serveEachOther()

	h1.createBusybox("mig", counterEvery100ms, "limits.memory=64MiB")
	h1.must("start", "mig")
	waitCounterAbove(t, h1.env, "mig", 5)
	// A file owned by a user of the container on its /dev (a tmpfs: CRIU
	// carries its contents in its images).
	h1.must("exec", "mig", "--", "sh", "-c", "echo note > /dev/remap-note && chown 1000:1001 /dev/remap-note")
	hosts := []*host{h1, h2}
	for round := range 2 {
		from, to := hosts[round%2], hosts[1-round%2]
		before := readCounter(t, from.env, "mig")
		old, got := migrateRemapped(t, from, to, "mig")
		after := readCounter(t, to.env, "mig")
		if after < before {
			t.Fatalf("round %d: the counter went from %d to %d: the container was booted, not migrated", round, before, after)
		}
		waitCounterAbove(t, to.env, "mig", after)
		inTargetCgroups(t, to.info("mig").PID, to.cgroupName+"/mig")

		// Inside: its own ids, as before.
		_, ids := statusIDs(t, to.must("exec", "mig", "--", "cat", "/proc/1/status"))
		for _, id := range ids {
			if id != 0 {
				t.Fatalf("round %d: init's ids inside are %v, not root's", round, ids)
			}
		}
		if out := to.must("exec", "mig", "--", "stat", "-c", "%u:%g", "/dev/remap-note"); strings.TrimSpace(out) != "1000:1001" {
			t.Errorf("round %d: /dev/remap-note is owned by %s inside", round, out)
		}
		// On the host: the new range's.
		checkHostIDs(t, to, "mig", got, old)
		pid := to.info("mig").PID
		if u, g := statOf(t, fmt.Sprintf("/proc/%d/root/dev/remap-note", pid)); u != got.first+1000 || g != got.first+1001 {
			t.Errorf("round %d: the host sees /dev/remap-note owned by %d:%d, want %d:%d", round, u, g, got.first+1000, got.first+1001)
		}
		// Written after the move: the container's ids on disk.
		file := fmt.Sprintf("/after-%d", round)
		to.must("exec", "mig", "--", "sh", "-c", fmt.Sprintf("echo x > %s && touch %s.user && chown 1000:1001 %s.user", file, file, file))
		if u, g := statOf(t, onDisk(t, to, "mig", file[1:])); u != 0 || g != 0 {
			t.Errorf("round %d: %s is on disk as %d:%d, not 0:0", round, file, u, g)
		}
		if u, g := statOf(t, onDisk(t, to, "mig", file[1:]+".user")); u != 1000 || g != 1001 {
			t.Errorf("round %d: %s.user is on disk as %d:%d, not 1000:1001", round, file, u, g)
		}
	}
}

// lsRun is `ls -ln /run` inside without the sizes and times: the mode,
// owner and group of each entry, by name.
func lsRun(t *testing.T, h *host, name string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(h.must("exec", name, "--", "ls", "-ln", "/run")), "\n") {
		f := strings.Fields(line)
		if len(f) < 9 {
			continue // "total N"
		}
		out[f[8]] = f[0] + " " + f[2] + ":" + f[3]
	}
	return out
}

// TestRemoteMigrateRemapDebian: a Debian with systemd goes h1 -> h2 -> h1
// where its range is taken each time: systemd stays running with no
// failed unit, dbus-daemon runs as messagebus inside and as the new
// range's messagebus on the host, /run's owners are as before, and
// systemd still makes a unit's cgroup and runs it as another user.
func TestRemoteMigrateRemapDebian(t *testing.T) {
	needCRIU(t)
	hs := newMigrationHosts(t)
	h1, h2 := hs.h1, hs.h2
	hs.serveEachOther()

	h1.must("create", "deb", "--template", "debian")
	h1.must("start", "deb")
	waitRunning(t, h1.env, "deb")
	msgbus, err := strconv.ParseUint(strings.TrimSpace(h1.must("exec", "deb", "--", "id", "-u", "messagebus")), 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	hosts := []*host{h1, h2}
	for round := range 2 {
		from, to := hosts[round%2], hosts[1-round%2]
		runBefore := lsRun(t, from, "deb")
		old, got := migrateRemapped(t, from, to, "deb")
		if state := strings.TrimSpace(to.run("exec", "deb", "--", "systemctl", "is-system-running").stdout); state != "running" {
			failed := to.run("exec", "deb", "--", "systemctl", "--failed", "--no-pager")
			t.Fatalf("round %d: after the migration systemd is %q\n%s", round, state, failed.stdout)
		}
		if failed := to.must("exec", "deb", "--", "systemctl", "--failed", "--no-legend"); strings.TrimSpace(failed) != "" {
			t.Fatalf("round %d: failed units after the migration:\n%s", round, failed)
		}
		byName := checkHostIDs(t, to, "deb", got, old)
		if ids, ok := byName["dbus-daemon"]; !ok || ids[0] != got.first+uint32(msgbus) {
			t.Errorf("round %d: dbus-daemon runs with host ids %v, want uid %d (messagebus %d of %s)", round, ids, got.first+uint32(msgbus), msgbus, got)
		}
		pid := strings.TrimSpace(to.must("exec", "deb", "--", "systemctl", "show", "-p", "MainPID", "--value", "dbus"))
		if _, ids := statusIDs(t, to.must("exec", "deb", "--", "cat", "/proc/"+pid+"/status")); ids[0] != uint32(msgbus) {
			t.Errorf("round %d: dbus-daemon runs as %d inside, not messagebus (%d)", round, ids[0], msgbus)
		}
		// Entries may come meanwhile (agetty.reload): those before keep
		// their owners.
		runAfter := lsRun(t, to, "deb")
		for entry, was := range runBefore {
			if runAfter[entry] != was {
				t.Errorf("round %d: /run/%s was %s and is %q", round, entry, was, runAfter[entry])
			}
		}
		// A new unit: systemd makes its cgroup (owned by the new range)
		// and runs it as nobody.
		if out := to.must("exec", "deb", "--", "systemd-run", "--wait", "--pipe", "--quiet", "-p", "User=nobody", "id", "-u"); strings.TrimSpace(out) != "65534" {
			t.Errorf("round %d: systemd-run as nobody printed %q", round, out)
		}
		to.must("exec", "deb", "--", "journalctl", "-n", "1", "--no-pager")
	}
}
