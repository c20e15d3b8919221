package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"lodge/internal/failpoint"

	"golang.org/x/sys/unix"
)

// DeviceRule allows one kind of access to a set of device nodes. Everything
// no rule allows is denied.
type DeviceRule struct {
	Type   byte   // 'c' (character) or 'b' (block)
	Major  int64  // -1: any major
	Minor  int64  // -1: any minor
	Access string // a subset of "rwm": read, write, mknod
}

// AllowedDevices are the device nodes a container may open: those lodge
// binds into its /dev (rootfs/dev.go), its own devpts, and two devices made
// for unprivileged use. The same list is written to the v1 devices
// controller and compiled into the cgroup2 device program (devbpf.go).
//
// fuse and tun are allowed for every container, as LXC and Incus do: both
// are mode 0666 on ordinary hosts, the kernel guards them itself (FUSE
// mounts follow the user namespace's rules, a tun device needs
// CAP_NET_ADMIN over the container's own network namespace), and FUSE file
// systems and VPNs are common in system containers. They are usable only
// where a node exists, which only host root can make.
//
// No "c *:* m" or "b *:* m" as LXC has: mknod of a device node needs
// CAP_MKNOD in the host's user namespace, which no container has, so the
// kernel refuses it first; the cgroup refuses it too, as a second line.
// (Overlayfs whiteouts, 0:0 nodes, are exempt in the kernel.)
var AllowedDevices = []DeviceRule{
	{'c', 1, 3, "rwm"},    // null
	{'c', 1, 5, "rwm"},    // zero
	{'c', 1, 7, "rwm"},    // full
	{'c', 1, 8, "rwm"},    // random
	{'c', 1, 9, "rwm"},    // urandom
	{'c', 5, 0, "rwm"},    // tty
	{'c', 5, 1, "rwm"},    // console
	{'c', 5, 2, "rwm"},    // ptmx
	{'c', 136, -1, "rwm"}, // pts/N, the container's ptys and its console
	{'c', 10, 229, "rwm"}, // fuse
	{'c', 10, 200, "rwm"}, // net/tun
}

// String is the rule in the v1 devices.allow syntax: "c 136:* rwm".
func (r DeviceRule) String() string {
	num := func(n int64) string {
		if n < 0 {
			return "*"
		}
		return strconv.FormatInt(n, 10)
	}
	return fmt.Sprintf("%c %s:%s %s", r.Type, num(r.Major), num(r.Minor), r.Access)
}

// Failpoints that switch one device layer off, so that the escape tests can
// prove each layer holds on its own. Never armed outside tests.
const (
	skipDevicesV1  = "skip-devices-v1"
	skipDevicesBPF = "skip-devices-bpf"
)

// restrictDevices denies the group every device but AllowedDevices, on the
// v1 devices hierarchy and with a device program on the cgroup2 group; a
// hybrid host gets both. Each works alone: a v1 group cannot be widened
// from inside (devices.allow needs CAP_SYS_ADMIN in the host's user
// namespace, and a child never gets more than its parent), and a cgroup2
// device program attached with BPF_F_ALLOW_MULTI runs for every descendant,
// whatever programs those add (the kernel allows an access only if all of
// them do).
//
// Inside a container (lodge nested in lodge) neither can be set, and the
// outer container's rules already bind every group below it: skip them.
func (g *Group) restrictDevices() error {
	if !inInitialUserNS() {
		return nil
	}
	v1, hasV1 := g.dirFor("devices")
	if hasV1 && failpoint.Check(skipDevicesV1) == nil {
		if err := restrictDevicesV1(v1.path, AllowedDevices); err != nil {
			return fmt.Errorf("restrict devices of cgroup %s: %w", g.name, err)
		}
	}
	v2, hasV2 := g.unified()
	if !hasV2 || failpoint.Check(skipDevicesBPF) != nil {
		return nil
	}
	err := attachDeviceProgram(v2.path, AllowedDevices)
	if err != nil && !(hasV1 && unsupportedBPF(err)) {
		return fmt.Errorf("restrict devices of cgroup %s: %w", g.name, err)
	}
	// A hybrid host whose kernel has no cgroup BPF keeps the v1 rules.
	return nil
}

// restrictDevicesV1 writes the rules to a v1 devices cgroup: deny all, then
// allow each. devices.list shows the result. A stale group reused with its
// rules in place is left as it is.
func restrictDevicesV1(dir string, rules []DeviceRule) error {
	list := filepath.Join(dir, "devices.list")
	if cur, err := readFile(list); err == nil && sameRules(cur, rules) {
		return nil
	}
	// The kernel refuses "a" while the group has children; those of a stale
	// group were just removed, but may take a moment to go offline.
	err := retryBusy(func() error { return writeFile(filepath.Join(dir, "devices.deny"), "a") })
	if err != nil {
		return fmt.Errorf("deny all devices in %s: %w", dir, err)
	}
	for _, r := range rules {
		if err := writeFile(filepath.Join(dir, "devices.allow"), r.String()); err != nil {
			return fmt.Errorf("allow %q in %s: %w", r, dir, err)
		}
	}
	return nil
}

// sameRules reports whether a devices.list holds exactly rules.
func sameRules(list string, rules []DeviceRule) bool {
	have := strings.Split(list, "\n")
	if len(have) != len(rules) {
		return false
	}
	for _, r := range rules {
		if !slices.Contains(have, r.String()) {
			return false
		}
	}
	return true
}

// retryBusy retries write for up to a second while it fails with EINVAL.
func retryBusy(write func() error) error {
	var err error
	for range 100 {
		if err = write(); !errors.Is(err, unix.EINVAL) {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
	return err
}

// DeviceList returns the v1 devices.list of the group ("a *:* rwm" when all
// are allowed), or "" on hosts without the v1 devices controller.
func (g *Group) DeviceList() (string, error) {
	d, ok := g.dirFor("devices")
	if !ok {
		return "", nil
	}
	return readFile(filepath.Join(d.path, "devices.list"))
}

// unsupportedBPF reports whether err says the kernel cannot attach cgroup
// device programs at all (built without CONFIG_CGROUP_BPF).
func unsupportedBPF(err error) bool {
	return errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP)
}

// inInitialUserNS reports whether this process runs in the host's user
// namespace, whose uid_map is the identity over all ids.
func inInitialUserNS() bool {
	data, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return true // no user namespaces at all
	}
	return strings.Join(strings.Fields(string(data)), " ") == "0 0 4294967295"
}
