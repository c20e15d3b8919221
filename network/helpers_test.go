package network

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"lodge/internal/testreq"
)

// needRoot skips integration tests without root or under -short.
func needRoot(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test (-short)")
	}
	if os.Geteuid() != 0 {
		testreq.Skip(t, "root", "creating bridges, veths and namespaces needs root")
	}
}

// hostHandle is a netlink handle of the test's (the host's) namespace.
func hostHandle(t *testing.T) *netlink.Handle {
	t.Helper()
	h, err := netlink.NewHandle()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

// container is a stand-in for a lodge container: a sleeping process in new
// user and network namespaces (container root is host uid 1000000), as a
// container's network namespace is owned by its user namespace.
type container struct {
	cmd  *exec.Cmd
	nsFD int
}

func startContainer(t *testing.T) *container {
	t.Helper()
	cmd := exec.Command("sleep", "infinity")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  unix.CLONE_NEWUSER | unix.CLONE_NEWNET,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 1000000, Size: 65536}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 1000000, Size: 65536}},
		Pdeathsig:   unix.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		testreq.Skipf(t, "userns", "start a process in new user and network namespaces: %v", err)
	}
	fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		cmd.Process.Kill()
		t.Fatal(err)
	}
	c := &container{cmd: cmd, nsFD: fd}
	t.Cleanup(c.kill)
	return c
}

// kill ends the container's process (only ours, by PID) and closes its
// namespace descriptor: with both gone the namespace dies.
func (c *container) kill() {
	if c.cmd.ProcessState == nil {
		c.cmd.Process.Kill()
		c.cmd.Wait()
	}
	if c.nsFD >= 0 {
		unix.Close(c.nsFD)
		c.nsFD = -1
	}
}

// testNetwork makes a bridge on the host with a free subnet, removed at the
// end of the test.
func testNetwork(t *testing.T, h *netlink.Handle) BridgeConfig {
	t.Helper()
	used, err := UsedPrefixes(h)
	if err != nil {
		t.Fatal(err)
	}
	name := unique("t")
	v4, err := AllocateIPv4(DefaultPool, used, name)
	if err != nil {
		t.Fatal(err)
	}
	v6, err := AllocateULA("test/"+name, used)
	if err != nil {
		t.Fatal(err)
	}
	c := BridgeConfig{Network: name, IPv4: v4, IPv6: v6}
	if _, err := EnsureBridge(h, c); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := DeleteBridge(h, name); err != nil {
			t.Error(err)
		}
	})
	return c
}

// unique makes a name of the test's own: two test runs at once (other
// worktrees) must not share bridges or veths. Short enough for BridgeName's
// readable form.
func unique(name string) string { return fmt.Sprintf("%s%d", name, os.Getpid()%10000000) }

// hostAddr returns the i-th host address of subnet (1 is the gateway).
func hostAddr(subnet netip.Prefix, i int) netip.Prefix {
	a := subnet.Masked().Addr()
	for range i {
		a = a.Next()
	}
	return netip.PrefixFrom(a, subnet.Bits())
}

// setSysctl writes a sysctl of the namespace nsFD (its own interfaces only).
func setSysctl(t *testing.T, nsFD int, path, value string) {
	t.Helper()
	if err := inNetNS(nsFD, func() error { return os.WriteFile(path, []byte(value), 0o644) }); err != nil {
		t.Fatal(err)
	}
}
