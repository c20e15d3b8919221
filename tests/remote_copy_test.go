package tests

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// newCopyHosts is two hosts, each with its own id pool (the harness's
// default: a copy gets a new range), h2 serving and trusting h1 as h2's
// remote "h2", new containers of both on storage backend.
func newCopyHosts(t *testing.T, backend string) *twoHosts {
	t.Helper()
	hs := newTwoHosts(t)
	hs.h1.useStorage(backend)
	hs.h2.useStorage(backend)
	hs.h2.startServe()
	hs.trust(hs.h1, hs.h2, "h2")
	return hs
}

// snapshotNames lists the snapshots of name on e.
func snapshotNames(t *testing.T, e *env, name string) []string {
	t.Helper()
	var snaps []struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal([]byte(e.must("snapshot", "list", name, "--format", "json")), &snaps); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range snaps {
		names = append(names, s.Name)
	}
	return names
}

// catData is /data inside running container name of e.
func catData(t *testing.T, e *env, name string) string {
	t.Helper()
	return strings.TrimSpace(e.must("exec", name, "--", "cat", "/data"))
}

// TestRemoteCopy: lodge copy src h2:dst, for dir and overlay storage: a
// busybox with a NIC (a static address on a network both hosts have) and
// two snapshots goes to h2 as dst; h1 keeps src as it was; on h2, dst has
// its own id range (h2's pool), a new MAC, DHCP instead of the static
// address, its own hostname; it starts with the file written before the
// copy, lists both snapshots by name, and one restored brings its file
// back and keeps the copy's MAC.
func TestRemoteCopy(t *testing.T) {
	for _, backend := range []string{"dir", "overlay"} {
		t.Run(backend, func(t *testing.T) {
			hs := newCopyHosts(t, backend)
			h1, h2 := hs.h1, hs.h2
			for _, h := range []*host{h1, h2} {
				h.must("network", "create", "seg", "--subnet", "10.78.0.0/24")
			}
			h1.createBusybox("src", "network.0.network=seg", "network.0.ipv4=10.78.0.10")
			h1.must("start", "src")
			for i, word := range []string{"one", "two"} {
				h1.must("exec", "src", "--", "sh", "-c", "echo "+word+" > /data")
				h1.must("snapshot", "create", "src", []string{"s1", "s2"}[i])
			}
			h1.must("exec", "src", "--", "sh", "-c", "echo three > /data")
			srcMachineID := strings.TrimSpace(h1.run("exec", "src", "--", "cat", "/etc/machine-id").stdout) // busybox: none
			srcInfo := h1.info("src")
			h1.must("stop", "src")

			r := h1.run("copy", "src", "h2:dst", "--format", "json")
			if r.code != 0 {
				t.Fatalf("lodge copy src h2:dst: %s\nh2's serve:\n%s", r, h2.serveLogs())
			}
			t.Logf("lodge copy src h2:dst --format json:\n%s%s", r.stderr, r.stdout)
			for _, want := range []string{"preflight of dst on the target", "sending the root filesystem of src", "sending the snapshots of src (s1, s2)", "making dst on the target"} {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("no %q in the progress:\n%s", want, r.stderr)
				}
			}
			var res struct {
				Name      string   `json:"name"`
				Remote    string   `json:"remote"`
				Backend   string   `json:"backend"`
				Snapshots []string `json:"snapshots"`
				Bytes     int64    `json:"bytes"`
				HostID    uint32   `json:"host_id"`
				NICs      []struct {
					HWAddr string `json:"hwaddr"`
				} `json:"nics"`
			}
			if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
				t.Fatalf("--format json: %v\n%s", err, r.stdout)
			}
			if res.Name != "dst" || res.Remote != "h2" || res.Backend != backend || strings.Join(res.Snapshots, ",") != "s1,s2" || res.Bytes <= 0 || res.HostID == 0 || len(res.NICs) != 1 {
				t.Errorf("the JSON result: %+v", res)
			}

			// The source: as it was.
			if got := strings.Join(snapshotNames(t, h1.env, "src"), ","); got != "s1,s2" {
				t.Errorf("src's snapshots on h1 after the copy: %q", got)
			}
			// The copy: its own ids and MAC, DHCP, stopped, with the snapshots.
			dstInfo := h2.info("dst")
			if dstInfo.State != "STOPPED" {
				t.Errorf("dst on h2 is %s, want STOPPED", dstInfo.State)
			}
			if got := strings.Join(snapshotNames(t, h2.env, "dst"), ","); got != "s1,s2" {
				t.Fatalf("dst's snapshots on h2: %q", got)
			}
			h2.must("start", "dst")
			dstInfo = h2.info("dst")
			t.Logf("src on h1: ids %s, NICs %+v; dst on h2: ids %s, NICs %+v", srcInfo.IDMap, srcInfo.NICs, dstInfo.IDMap, dstInfo.NICs)
			if dstInfo.IDMap == "" || dstInfo.IDMap == srcInfo.IDMap {
				t.Errorf("dst's id map on h2 %q, src's on h1 %q: want a range of h2's own", dstInfo.IDMap, srcInfo.IDMap)
			}
			if len(dstInfo.NICs) != 1 || len(srcInfo.NICs) != 1 || dstInfo.NICs[0].HWAddr == srcInfo.NICs[0].HWAddr || dstInfo.NICs[0].HWAddr != res.NICs[0].HWAddr {
				t.Errorf("dst's NICs %+v, src's %+v, the copy said %+v: want a new MAC", dstInfo.NICs, srcInfo.NICs, res.NICs)
			}
			if len(dstInfo.NICs) == 1 && dstInfo.NICs[0].IPv4 != "" {
				t.Errorf("dst kept the static address %s", dstInfo.NICs[0].IPv4)
			}
			if got := catData(t, h2.env, "dst"); got != "three" {
				t.Errorf("/data in dst on h2 = %q, want three", got)
			}
			if got := strings.TrimSpace(h2.must("exec", "dst", "--", "hostname")); got != "dst" {
				t.Errorf("dst's hostname on h2 = %q", got)
			}
			h2.must("stop", "dst")
			h2.must("snapshot", "restore", "dst", "s1")
			h2.must("start", "dst")
			if got := catData(t, h2.env, "dst"); got != "one" {
				t.Errorf("/data in dst after restoring s1 = %q, want one", got)
			}
			if got := strings.TrimSpace(h2.must("exec", "dst", "--", "hostname")); got != "dst" {
				t.Errorf("dst's hostname after restoring s1 = %q", got)
			}
			if got := strings.TrimSpace(h2.must("exec", "dst", "--", "cat", "/etc/machine-id")); got == srcMachineID || len(got) != 32 {
				t.Errorf("dst restored to s1 has the machine-id %q (src's: %q): want one of its own", got, srcMachineID)
			}
			if i := h2.info("dst"); len(i.NICs) != 1 || i.NICs[0].HWAddr != dstInfo.NICs[0].HWAddr {
				t.Errorf("after restoring s1, dst's NICs are %+v, were %+v", i.NICs, dstInfo.NICs)
			}
			// The source still boots, with its own file.
			h1.must("start", "src")
			if got := catData(t, h1.env, "src"); got != "three" {
				t.Errorf("/data in src on h1 = %q, want three", got)
			}
		})
	}
}

// TestRemoteCopyRefused: a copy onto a name taken on h2, a copy of a
// running container and one of a tree chowned into h1's ids are refused
// with the reason and leave h2 with nothing of them.
func TestRemoteCopyRefused(t *testing.T) {
	hs := newCopyHosts(t, "dir")
	h1, h2 := hs.h1, hs.h2
	h2.createBusybox("taken")
	h1.createBusybox("src")
	h1.must("snapshot", "create", "src", "s1")
	idmap := func() string {
		data, _ := os.ReadFile(filepath.Join(h2.root, "idmap.json"))
		return string(data)
	}
	before := idmap()

	r := h1.run("copy", "src", "h2:taken")
	if r.code == 0 || !strings.Contains(r.stderr, `"taken" already exists`) || !strings.Contains(r.stderr, "nothing was sent") {
		t.Fatalf("a copy onto a name taken on h2: %s", r)
	}
	if got := idmap(); got != before {
		t.Errorf("h2's id ranges changed by a refused copy:\n%s\nwas:\n%s", got, before)
	}
	if left, _ := filepath.Glob(filepath.Join(h2.root, "tmp", "*taken*")); len(left) > 0 {
		t.Errorf("the refused copy left %v on h2", left)
	}
	if i := h2.info("taken"); i.State != "STOPPED" {
		t.Errorf("h2's own taken is %s", i.State)
	}

	h1.must("start", "src")
	r = h1.run("copy", "src", "h2:dst")
	if r.code == 0 || !strings.Contains(r.stderr, "is running") || !strings.Contains(r.stderr, "lodge migrate src") {
		t.Fatalf("a copy of a running container: %s", r)
	}
	gone(t, h2.env, "dst")
	if i := h1.info("src"); i.State != "RUNNING" {
		t.Errorf("src is %s on h1 after the refused copy", i.State)
	}

	// A tree chowned into h1's ids (rootfs.shift = chown, after a start)
	// would reach h2 with owners of h1's range: refused.
	h1.createBusybox("shifted", "rootfs.shift=chown")
	h1.must("start", "shifted")
	h1.must("stop", "shifted")
	r = h1.run("copy", "shifted", "h2:dst")
	if r.code == 0 || !strings.Contains(r.stderr, "chowned into this host's id range") {
		t.Fatalf("a copy of a chown-shifted container: %s", r)
	}
	gone(t, h2.env, "dst")
}

// TestRemoteCopyPull: lodge copy h2:far near, run on h1, has h2 send far
// with its snapshot to h1 (its remote for h1, through h1's lodge serve),
// with h2's progress on h1's stderr; refused, and h1 left with nothing,
// while h2 has no remote for h1.
func TestRemoteCopyPull(t *testing.T) {
	hs := newCopyHosts(t, "dir")
	h1, h2 := hs.h1, hs.h2
	h2.createBusybox("far")
	h2.must("snapshot", "create", "far", "s1")
	r := h1.run("copy", "h2:far", "near")
	if r.code == 0 || !strings.Contains(r.stderr, "has no remote for the host asking") {
		t.Fatalf("a copy from h2, which has no remote for h1: %s", r)
	}
	gone(t, h1.env, "near")
	h1.startServe()
	hs.trust(h2, h1, "h1")
	r = h1.run("copy", "h2:far", "near", "--format", "json")
	if r.code != 0 {
		t.Fatalf("lodge copy h2:far near: %s\nh2's serve:\n%s\nh1's serve:\n%s", r, h2.serveLogs(), h1.serveLogs())
	}
	t.Logf("lodge copy h2:far near --format json:\n%s%s", r.stderr, r.stdout)
	if !strings.Contains(r.stderr, "preflight of near on the target") {
		t.Errorf("h2's progress is not on stderr:\n%s", r.stderr)
	}
	var res struct {
		Name string `json:"name"`
		From string `json:"from"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || res.Name != "near" || res.From != "h2:far" {
		t.Errorf("the JSON result: %+v (%v)\n%s", res, err, r.stdout)
	}
	if got := strings.Join(snapshotNames(t, h1.env, "near"), ","); got != "s1" {
		t.Errorf("near's snapshots on h1: %q", got)
	}
	h1.must("start", "near")
	if got := strings.TrimSpace(h1.must("exec", "near", "--", "hostname")); got != "near" {
		t.Errorf("near's hostname = %q", got)
	}
	if got := strings.Join(snapshotNames(t, h2.env, "far"), ","); got != "s1" {
		t.Errorf("far's snapshots on h2 after the copy: %q", got)
	}
}

// TestRemoteCopyCut: copies of a container with a big file are cut
// mid-stream: by interrupting lodge copy (the source aborts the target),
// by killing lodge copy (h2 removes the copy itself: its receive failed),
// and by killing h2's lodge serve (its restart removes what the killed one
// received, and gives the id range back); each time h1 keeps src as it
// was and h2 ends with nothing of the copy, and a copy after goes through.
func TestRemoteCopyCut(t *testing.T) {
	hs := newCopyHosts(t, "dir")
	h1, h2 := hs.h1, hs.h2
	h1.createBusybox("src")
	h1.must("snapshot", "create", "src", "s1")
	// A gigabyte of zeros: the stream takes seconds, read and written whole.
	h1.editRootfs("src", func(dir string) {
		f, err := os.Create(dir + "big")
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(1 << 30); err != nil {
			t.Fatal(err)
		}
		f.Close()
	})
	for _, how := range []string{"interrupt", "kill-source", "kill-serve"} {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute) // a hang guard
		cmd := h1.command(ctx, "copy", "src", "h2:dst")
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var said strings.Builder
		cut := false
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			said.WriteString(sc.Text() + "\n")
			// A tick of the root filesystem's stream: it is under way.
			if !cut && strings.Contains(sc.Text(), "root filesystem: ") && strings.Contains(sc.Text(), "MiB sent") {
				cut = true
				switch how {
				case "interrupt":
					cmd.Process.Signal(syscall.SIGINT) // its own pid: the wrapper exec'd it
				case "kill-source":
					cmd.Process.Kill()
				default:
					h2.killServe()
				}
			}
		}
		err = cmd.Wait()
		cancel()
		t.Logf("%s:\n%s", how, said.String())
		if !cut {
			t.Fatalf("%s: the stream ended before it could be cut", how)
		}
		if err == nil {
			t.Fatalf("%s: the copy went through", how)
		}
		if how == "interrupt" && !strings.Contains(said.String(), "the target keeps nothing of the copy") {
			t.Errorf("%s: the message does not say the target was cleaned", how)
		}
		if how == "kill-source" {
			// Nobody aborts: h2 removes the copy itself, its stream cut.
			waitUntil(t, "h2 to remove the copy its source died sending", func() bool {
				_, err := os.Stat(filepath.Join(h2.root, "tmp", "dst.create"))
				return os.IsNotExist(err)
			})
		}
		if how == "kill-serve" {
			if left, _ := filepath.Glob(filepath.Join(h2.root, "tmp", "dst.create")); len(left) == 0 {
				t.Log("the killed serve left no staging directory")
			}
			h2.startServe()
		}
		gone(t, h2.env, "dst")
		if got := strings.Join(snapshotNames(t, h1.env, "src"), ","); got != "s1" {
			t.Errorf("%s: src's snapshots on h1: %q", how, got)
		}
		if i := h1.info("src"); i.State != "STOPPED" {
			t.Errorf("%s: src is %s on h1", how, i.State)
		}
	}
	h1.must("copy", "src", "h2:dst")
	if got := strings.Join(snapshotNames(t, h2.env, "dst"), ","); got != "s1" {
		t.Errorf("dst's snapshots on h2 after the copy that went through: %q", got)
	}
}

// TestRemoteCopyDebian: a Debian container with systemd, with a snapshot
// taken while it ran, copied to h2 (dir and overlay storage) boots there
// with systemd running and no failed unit, the file written before the
// copy, its own hostname and a machine-id not the source's.
func TestRemoteCopyDebian(t *testing.T) {
	for _, backend := range []string{"dir", "overlay"} {
		t.Run(backend, func(t *testing.T) {
			hs := newCopyHosts(t, backend)
			h1, h2 := hs.h1, hs.h2
			h1.must("create", "deb", "--template", "debian")
			h1.must("start", "deb")
			waitRunning(t, h1.env, "deb")
			h1.must("exec", "deb", "--", "sh", "-c", "echo before > /root/mark")
			h1.must("snapshot", "create", "deb", "s1")
			srcID := strings.TrimSpace(h1.must("exec", "deb", "--", "cat", "/etc/machine-id"))
			h1.must("stop", "deb")
			r := h1.run("copy", "deb", "h2:deb2")
			if r.code != 0 {
				t.Fatalf("lodge copy deb h2:deb2: %s\nh2's serve:\n%s", r, h2.serveLogs())
			}
			t.Logf("lodge copy deb h2:deb2:\n%s%s", r.stderr, r.stdout)
			h2.must("start", "deb2")
			waitRunning(t, h2.env, "deb2")
			if state := strings.TrimSpace(h2.run("exec", "deb2", "--", "systemctl", "is-system-running").stdout); state != "running" {
				t.Errorf("systemd in deb2 on h2 is %q", state)
			}
			if failed := h2.must("exec", "deb2", "--", "systemctl", "--failed", "--no-legend"); strings.TrimSpace(failed) != "" {
				t.Errorf("failed units in deb2 on h2:\n%s", failed)
			}
			if got := strings.TrimSpace(h2.must("exec", "deb2", "--", "cat", "/root/mark")); got != "before" {
				t.Errorf("/root/mark in deb2 = %q", got)
			}
			if got := strings.TrimSpace(h2.must("exec", "deb2", "--", "hostname")); got != "deb2" {
				t.Errorf("deb2's hostname = %q", got)
			}
			if got := strings.TrimSpace(h2.must("exec", "deb2", "--", "cat", "/etc/machine-id")); got == srcID {
				t.Errorf("deb2 has deb's machine-id %s", got)
			}
			if got := strings.Join(snapshotNames(t, h2.env, "deb2"), ","); got != "s1" {
				t.Errorf("deb2's snapshots on h2: %q", got)
			}
		})
	}
}
