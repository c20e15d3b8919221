package cgroup

import (
	"bufio"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"lodge/internal/testreq"

	"golang.org/x/sys/unix"
)

func TestDeviceRuleString(t *testing.T) {
	for rule, want := range map[DeviceRule]string{
		{'c', 1, 3, "rwm"}:   "c 1:3 rwm",
		{'c', 136, -1, "rw"}: "c 136:* rw",
		{'b', -1, -1, "m"}:   "b *:* m",
	} {
		if got := rule.String(); got != want {
			t.Errorf("%+v: %q, want %q", rule, got, want)
		}
	}
}

// probeDevices runs, inside g, a shell that opens each node in nodes and
// reports which opened; the process is moved into g (if not nil) before it
// tries.
func probeDevices(t *testing.T, g *Group, nodes map[string]string) map[string]bool {
	t.Helper()
	var script strings.Builder
	script.WriteString("read go\n")
	for name, path := range nodes {
		fmt.Fprintf(&script, "if (exec 3<%s) 2>/dev/null; then echo %s; fi\n", path, name)
	}
	fmt.Fprintf(&script, "if mknod %s c 1 1 2>/dev/null; then echo mknod; fi\n", filepath.Join(t.TempDir(), "made"))
	cmd := exec.Command("/bin/sh", "-c", script.String())
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	if g == nil {
		// the control: stay in the test's own cgroup
	} else if err := g.AddProcess(cmd.Process.Pid); err != nil {
		cmd.Process.Kill()
		t.Fatal(err)
	}
	stdin.Write([]byte("go\n"))
	stdin.Close()
	opened := map[string]bool{}
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		opened[lines.Text()] = true
	}
	return opened
}

// TestDeviceAllowList: a group may open the allowed nodes and no other, with
// both layers, and with each layer alone (v1 devices controller, cgroup2
// device program), as far as this host has them.
func TestDeviceAllowList(t *testing.T) {
	h := rootHost(t)
	dir := t.TempDir()
	major, minor := testreq.HostBlockDevice(t)
	disk, kmsg := filepath.Join(dir, "disk"), filepath.Join(dir, "kmsg")
	if err := unix.Mknod(disk, unix.S_IFBLK|0o600, int(unix.Mkdev(major, minor))); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(kmsg, unix.S_IFCHR|0o600, int(unix.Mkdev(1, 11))); err != nil {
		t.Fatal(err)
	}
	nodes := map[string]string{"null": "/dev/null", "zero": "/dev/zero", "disk": disk, "kmsg": kmsg}
	// The control: outside any restricted group, host root opens them all.
	if opened := probeDevices(t, nil, nodes); !opened["disk"] || !opened["kmsg"] || !opened["mknod"] {
		t.Fatalf("outside the group, host root opened only %v; the test cannot tell the cgroup's work", opened)
	}
	// "none" turns both layers off again: the control that the layers, not
	// something else, refuse the nodes in the other cases.
	layers := []string{"both", "none"}
	if _, ok := h.Unified(); ok {
		layers = append(layers, "bpf-only")
	}
	if slices.Contains(h.Controllers(), "devices") {
		layers = append(layers, "v1-only")
	}
	for _, layer := range layers {
		t.Run(layer, func(t *testing.T) {
			g := testGroup(t, h, "dev-"+layer)
			if err := g.Create(); err != nil {
				t.Fatal(err)
			}
			if d, ok := g.dirFor("devices"); ok && (layer == "bpf-only" || layer == "none") {
				if err := writeFile(filepath.Join(d.path, "devices.allow"), "a"); err != nil {
					t.Fatal(err)
				}
			}
			if d, ok := g.unified(); ok && (layer == "v1-only" || layer == "none") {
				cg, err := unix.Open(d.path, unix.O_RDONLY|unix.O_DIRECTORY, 0)
				if err != nil {
					t.Fatal(err)
				}
				err = detachDevicePrograms(cg)
				unix.Close(cg)
				if err != nil {
					t.Fatal(err)
				}
			}
			opened := probeDevices(t, g, nodes)
			if layer == "none" {
				if !opened["disk"] || !opened["kmsg"] {
					t.Errorf("with both layers off the group opened only %v", opened)
				}
				return
			}
			checkDeviceState(t, g, layer)
			if !opened["null"] || !opened["zero"] {
				t.Errorf("%s: /dev/null or /dev/zero did not open (opened: %v)", layer, opened)
			}
			for _, bad := range []string{"disk", "kmsg", "mknod"} {
				if opened[bad] {
					t.Errorf("%s: %s succeeded inside the group", layer, bad)
				}
			}
		})
	}
}

func checkDeviceState(t *testing.T, g *Group, layer string) {
	t.Helper()
	list, err := g.DeviceList()
	if err != nil {
		t.Fatal(err)
	}
	if layer != "bpf-only" && list != "" && (strings.Contains(list, "a *:* rwm") || !strings.Contains(list, "c 136:* rwm")) {
		t.Errorf("devices.list = %q, want the allow-list", list)
	}
	progs, err := g.DevicePrograms()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := g.unified(); ok && layer != "v1-only" && len(progs) != 1 {
		t.Errorf("%d device programs attached, want 1", len(progs))
	}
}

// TestDeviceProgramReplaced: a stale group reused for a new container ends
// up with one device program, not one per start.
func TestDeviceProgramReplaced(t *testing.T) {
	h := rootHost(t)
	if _, ok := h.Unified(); !ok {
		testreq.Skip(t, "cgroup2", "no cgroup2 hierarchy on this host")
	}
	g := testGroup(t, h, "replaced")
	for range 3 {
		if err := g.Create(); err != nil {
			t.Fatal(err)
		}
	}
	if progs, err := g.DevicePrograms(); err != nil || len(progs) != 1 {
		t.Fatalf("after three creates: programs %v, %v; want exactly one", progs, err)
	}
}

// TestVerifierLogOnFailure: a program the kernel refuses comes back with
// the verifier's reason, which the fast path does not ask for.
func TestVerifierLogOnFailure(t *testing.T) {
	rootHost(t)
	code := encodeProgram([]insn{{Op: opMovImm, Dst: r0, Imm: 1}}) // no exit
	if fd, err := loadProgram(code, nil); err == nil {
		unix.Close(fd)
		t.Fatal("the kernel loaded a program without exit")
	}
	log := make([]byte, 4096)
	if _, err := loadProgram(code, log); err == nil || cString(log) == "" {
		t.Errorf("with a log buffer: %v, log %q; want an error and the verifier's words", err, cString(log))
	}
}
