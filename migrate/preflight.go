package migrate

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Blocker is one reason a container's processes cannot be checkpointed.
type Blocker struct {
	PID  int    // the process on the host (0: not one process, e.g. CRIU itself)
	Comm string // its name, /proc/PID/comm
	What string // e.g. "io_uring instance (fd 5)", "nested uts namespace"
	Fix  string // what the user can do about it
}

// String is "PID (COMM): WHAT; FIX".
func (b Blocker) String() string {
	s := b.What
	if b.PID != 0 {
		s = fmt.Sprintf("%d (%s): %s", b.PID, b.Comm, b.What)
	}
	if b.Fix != "" {
		s += "; " + b.Fix
	}
	return s
}

// Preflight inspects every process in pids (the container's processes,
// host pids: cgroup.procs of the container's cgroups, recursively) whose
// init is initPID, reading /proc only (nothing is frozen or traced), and
// lists what would make a CRIU dump fail: io_uring and other descriptors
// CRIU cannot dump, sockets of families it cannot dump and netlink sockets
// with unread messages, tun and FUSE devices, FUSE mounts, namespaces other
// than init's that CRIU refuses (nested uts, ipc, pid, user, cgroup and time;
// nested mount and network namespaces are fine), and sessions whose leader
// is outside the container's pid namespace. c (may be nil) adds what the
// CRIU binary itself lacks. A process that exits while it is being read is
// skipped. The blockers come sorted by pid.
func Preflight(initPID int, pids []int, c *CRIU) ([]Blocker, error) {
	return preflight("/proc", initPID, pids, c)
}

func preflight(proc string, initPID int, pids []int, c *CRIU) ([]Blocker, error) {
	var out []Blocker
	if c != nil && c.Version < MinCRIU {
		out = append(out, Blocker{What: fmt.Sprintf("%s is older than %s", c, VersionString(MinCRIU)), Fix: "run make deps, or set criu.path in the host config"})
	}
	initNS, err := readNamespaces(proc, initPID)
	if err != nil {
		return nil, fmt.Errorf("preflight: init %d: %w", initPID, err)
	}
	mountinfo, err := os.ReadFile(fmt.Sprintf("%s/%d/mountinfo", proc, initPID))
	if err != nil {
		return nil, fmt.Errorf("preflight: init %d: %w", initPID, err)
	}
	initComm := readComm(proc, initPID)
	for _, m := range fuseMounts(string(mountinfo)) {
		out = append(out, Blocker{PID: initPID, Comm: initComm, What: fmt.Sprintf("FUSE mount at %s (%s)", m.point, m.fstype),
			Fix: "unmount it before checkpointing: CRIU cannot dump FUSE mounts"})
	}
	sorted := append([]int(nil), pids...)
	sort.Ints(sorted)
	files, err := newFileScope(proc, initPID, sorted)
	if err != nil {
		return nil, fmt.Errorf("preflight: %w", err)
	}
	nets := map[string]*netTables{} // by net namespace
	for _, pid := range sorted {
		bs, err := inspect(proc, pid, initNS, nets, files)
		if isGone(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("preflight: process %d: %w", pid, err)
		}
		out = append(out, bs...)
	}
	return out, nil
}

// isGone reports an error from reading /proc of a process that has exited.
func isGone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH)
}

func readComm(proc string, pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("%s/%d/comm", proc, pid))
	if err != nil {
		return "?"
	}
	return strings.TrimSuffix(string(b), "\n")
}

// nsTypes are the namespaces compared with init's, and whether CRIU can
// dump a process in one of that kind other than init's (CLONE_SUBNS in
// CRIU's namespaces.c: mount and network only; "Can't dump nested uts
// namespace" otherwise).
var nsTypes = []struct {
	name   string
	nested bool // CRIU dumps a nested one
	fix    string
}{
	{"mnt", true, ""},
	{"net", true, ""},
	{"uts", false, "for a systemd unit, a drop-in with ProtectHostname=no; else stop the process"},
	{"ipc", false, "for a systemd unit, a drop-in with PrivateIPC=no; else stop the process"},
	{"pid", false, "stop the process (a container or sandbox inside the container): CRIU cannot dump nested pid namespaces"},
	{"user", false, "stop the process (a container or sandbox inside the container): CRIU cannot dump nested user namespaces"},
	{"cgroup", false, "stop the process: CRIU cannot dump nested cgroup namespaces"},
	{"time", false, "stop the process: CRIU cannot dump nested time namespaces"},
}

// readNamespaces returns the /proc/PID/ns links ("uts:[4026531838]") by name;
// kinds the kernel lacks are left out.
func readNamespaces(proc string, pid int) (map[string]string, error) {
	ns := map[string]string{}
	for _, t := range nsTypes {
		link, err := os.Readlink(fmt.Sprintf("%s/%d/ns/%s", proc, pid, t.name))
		if errors.Is(err, fs.ErrNotExist) {
			if _, err := os.Stat(fmt.Sprintf("%s/%d", proc, pid)); err != nil {
				return nil, err
			}
			continue // this kernel has no such namespace
		}
		if err != nil {
			return nil, err
		}
		ns[t.name] = link
	}
	return ns, nil
}

// fileScope is what decides whether an open file is the host's: the
// mounts of the container's mount namespaces (what CRIU dumps), the mounts
// of the caller's (the host's), and the console's device, a host pty that
// CRIU is told is external.
type fileScope struct {
	container map[int]bool
	host      map[int]bool
	console   uint64 // st_rdev of init's /dev/console; 0: none
}

// newFileScope reads the mount ids of the mount namespaces of pids, the
// caller's own (proc/self), and init's console.
func newFileScope(proc string, initPID int, pids []int) (fileScope, error) {
	scope := fileScope{container: map[int]bool{}, host: map[int]bool{}}
	seen := map[string]bool{}
	for _, pid := range pids {
		ns, err := os.Readlink(fmt.Sprintf("%s/%d/ns/mnt", proc, pid))
		if isGone(err) || seen[ns] {
			continue
		}
		if err != nil {
			return scope, err
		}
		if err := addMountIDs(scope.container, fmt.Sprintf("%s/%d/mountinfo", proc, pid)); isGone(err) {
			continue
		} else if err != nil {
			return scope, err
		}
		seen[ns] = true
	}
	if err := addMountIDs(scope.host, proc+"/self/mountinfo"); err != nil && !isGone(err) {
		return scope, err
	}
	var st unix.Stat_t
	if unix.Stat(fmt.Sprintf("%s/%d/root/dev/console", proc, initPID), &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFCHR {
		scope.console = uint64(st.Rdev)
	}
	return scope, nil
}

func addMountIDs(ids map[int]bool, mountinfo string) error {
	data, err := os.ReadFile(mountinfo)
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if id, err := strconv.Atoi(strings.SplitN(line, " ", 2)[0]); err == nil {
			ids[id] = true
		}
	}
	return nil
}

// hostFile tells whether fd of pid (a path, by its /proc link) is a file of
// the host: on a mount of the host's and on none of the container's. CRIU
// fails on one ("Can't lookup mount=N for fd=N"). The console is exempt
// (CRIU is told it is external), and so are files of no mount anyone sees
// (a memfd's, mnt_id 0), which CRIU dumps.
func (s fileScope) hostFile(proc string, pid, fd int) bool {
	if s.console != 0 {
		var st unix.Stat_t
		if unix.Stat(fmt.Sprintf("%s/%d/fd/%d", proc, pid, fd), &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFCHR && uint64(st.Rdev) == s.console {
			return false
		}
	}
	id, err := fdMountID(proc, pid, fd)
	return err == nil && !s.container[id] && s.host[id]
}

// fdMountID is the id of the mount an open file is on (fdinfo's mnt_id).
func fdMountID(proc string, pid, fd int) (int, error) {
	data, err := os.ReadFile(fmt.Sprintf("%s/%d/fdinfo/%d", proc, pid, fd))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "mnt_id:"); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, fmt.Errorf("fdinfo of fd %d has no mnt_id", fd)
}

// inspect lists the blockers of one process. files tells the host's open
// files from the container's.
func inspect(proc string, pid int, initNS map[string]string, nets map[string]*netTables, files fileScope) ([]Blocker, error) {
	comm := readComm(proc, pid)
	var out []Blocker
	add := func(what, fix string) { out = append(out, Blocker{PID: pid, Comm: comm, What: what, Fix: fix}) }

	ns, err := readNamespaces(proc, pid)
	if err != nil {
		return nil, err
	}
	for _, t := range nsTypes {
		if _, ok := ns[t.name]; !ok && initNS[t.name] != "" {
			// A namespace init has and this process lacks: it is
			// exiting (the kernel drops a task's namespaces before it
			// leaves /proc), not nested.
			return nil, fs.ErrNotExist
		}
	}
	for _, t := range nsTypes {
		if !t.nested && ns[t.name] != initNS[t.name] {
			add(fmt.Sprintf("nested %s namespace", t.name), t.fix)
		}
	}

	status, err := os.ReadFile(fmt.Sprintf("%s/%d/status", proc, pid))
	if err != nil {
		return nil, err
	}
	if outside, ok := sessionOutside(string(status)); ok && outside {
		add("session leader outside the container (a lodge exec session)",
			"end that session (an exec from a lodge that did not give the command its own session), or start it again with this lodge's exec")
	}

	fdDir := fmt.Sprintf("%s/%d/fd", proc, pid)
	entries, err := os.ReadDir(fdDir)
	if err != nil {
		return nil, err
	}
	var tables *netTables
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		target, err := os.Readlink(fdDir + "/" + e.Name())
		if isGone(err) {
			continue // closed meanwhile
		}
		if err != nil {
			return nil, err
		}
		if what, fix, bad := classifyFD(target); bad {
			add(fmt.Sprintf("%s (fd %d)", what, fd), fix)
			continue
		}
		if strings.HasPrefix(target, "/") {
			if files.hostFile(proc, pid, fd) {
				add(fmt.Sprintf("file of the host %s (fd %d)", target, fd),
					"it was passed in from outside the container (a lodge exec's output sent to a host file, or its terminal): end the process, or start it again with its descriptors inside the container (e.g. >/dev/null 2>&1 </dev/null)")
			}
			continue
		}
		ino, ok := socketInode(target)
		if !ok {
			continue
		}
		proto, err := sockProtoName(fdDir + "/" + e.Name())
		if isGone(err) {
			continue
		}
		if err != nil {
			continue // no name to judge by: the dump itself will tell
		}
		if proto == "NETLINK" && tables == nil {
			if tables, err = netTablesOf(proc, pid, ns["net"], nets); err != nil {
				return nil, err
			}
		}
		if what, fix, bad := classifySocket(proto, ino, tables); bad {
			add(fmt.Sprintf("%s (fd %d)", what, fd), fix)
		}
	}
	return out, nil
}

// sessionOutside reads NSsid from /proc/PID/status: the session id in each
// pid namespace the process is in, outermost first. 0 in the innermost
// means its session leader is outside that namespace, which CRIU refuses
// ("A session leader of PID is outside of its pid namespace"). ok is false
// when the kernel has no NSsid line.
func sessionOutside(status string) (outside, ok bool) {
	for _, line := range strings.Split(status, "\n") {
		rest, found := strings.CutPrefix(line, "NSsid:")
		if !found {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return false, false
		}
		return f[len(f)-1] == "0", true
	}
	return false, false
}

// supportedAnon are the anonymous-inode descriptors CRIU 4.2 dumps, as
// readlink shows them after "anon_inode:".
var supportedAnon = map[string]bool{
	"[eventfd]":   true,
	"[eventpoll]": true,
	"[signalfd]":  true,
	"[timerfd]":   true,
	"inotify":     true,
	"[fanotify]":  true,
	"[pidfd]":     true, // since CRIU 4.0
	"bpf-map":     true,
}

// classifyFD says whether a descriptor, by its /proc/PID/fd link target,
// blocks a dump, and what it is. Sockets are classified apart (netTables).
func classifyFD(target string) (what, fix string, bad bool) {
	if name, ok := strings.CutPrefix(target, "anon_inode:"); ok {
		switch {
		case supportedAnon[name]:
			return "", "", false
		case name == "[io_uring]":
			return "io_uring instance", "stop the process, or make it work without io_uring: CRIU cannot dump io_uring", true
		case name == "[userfaultfd]":
			return "userfaultfd", "stop the process: CRIU cannot dump a userfaultfd", true
		case name == "[perf_event]":
			return "perf_event descriptor", "stop the profiler or tracer: CRIU cannot dump perf events", true
		default:
			return fmt.Sprintf("anonymous inode %s", name), "stop the process: CRIU cannot dump this kind of descriptor", true
		}
	}
	switch {
	case strings.HasPrefix(target, "pidfd:"): // a pidfd on pidfs (kernels from 6.9)
		return "", "", false
	case target == "/dev/net/tun":
		return "tun/tap device", "stop the process that holds it (a VPN, say): lodge does not checkpoint tun devices", true
	case target == "/dev/fuse":
		return "FUSE device (a FUSE file system's server)", "unmount the FUSE file system and stop its server: CRIU cannot dump FUSE", true
	case target == "/dev/kvm" || strings.HasPrefix(target, "/dev/vhost-"):
		return fmt.Sprintf("virtualization device %s", target), "stop the virtual machine: CRIU cannot dump it", true
	}
	return "", "", false
}

// socketInode parses "socket:[12345]".
func socketInode(target string) (uint64, bool) {
	s, ok := strings.CutPrefix(target, "socket:[")
	if !ok || !strings.HasSuffix(s, "]") {
		return 0, false
	}
	n, err := strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 64)
	return n, err == nil
}

// netTables are the netlink sockets of a network namespace by inode, from
// /proc/PID/net/netlink.
type netTables struct {
	netlink map[uint64]netlinkSock
}

type netlinkSock struct {
	protocol int
	groups   uint32
	rmem     uint64 // bytes queued for reading
}

func netTablesOf(proc string, pid int, netns string, cache map[string]*netTables) (*netTables, error) {
	if t, ok := cache[netns]; ok && netns != "" {
		return t, nil
	}
	b, err := os.ReadFile(fmt.Sprintf("%s/%d/net/netlink", proc, pid))
	if err != nil {
		return nil, err
	}
	nl, err := parseNetlink(strings.NewReader(string(b)))
	if err != nil {
		return nil, err
	}
	t := &netTables{netlink: nl}
	cache[netns] = t
	return t, nil
}

// parseNetlink reads /proc/net/netlink:
//
//	sk               Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode
//	ffff8d0c8a4b3000 0   1          00000551 0        0        0     2        0        18305
func parseNetlink(r io.Reader) (map[uint64]netlinkSock, error) {
	out := map[uint64]netlinkSock{}
	sc := bufio.NewScanner(r)
	first := true
	for sc.Scan() {
		if first {
			first = false
			continue
		}
		f := strings.Fields(sc.Text())
		if len(f) < 10 {
			continue
		}
		proto, err1 := strconv.Atoi(f[1])
		groups, err2 := strconv.ParseUint(f[3], 16, 32)
		rmem, err3 := strconv.ParseUint(f[4], 10, 64)
		ino, err4 := strconv.ParseUint(f[9], 10, 64)
		if err := errors.Join(err1, err2, err3, err4); err != nil {
			return nil, fmt.Errorf("/proc/net/netlink line %q: %w", sc.Text(), err)
		}
		out[ino] = netlinkSock{protocol: proto, groups: uint32(groups), rmem: rmem}
	}
	return out, sc.Err()
}

// netlinkNames names netlink protocols (linux/netlink.h).
var netlinkNames = map[int]string{
	0: "route", 2: "usersock", 4: "sock_diag", 5: "nflog", 6: "xfrm", 7: "selinux", 8: "iscsi",
	9: "audit", 10: "fib_lookup", 11: "connector", 12: "netfilter", 13: "ip6_fw", 14: "dnrtmsg",
	15: "kobject_uevent", 16: "generic", 18: "scsitransport", 19: "ecryptfs", 20: "rdma", 21: "crypto", 22: "smc",
}

func netlinkName(protocol int) string {
	if n, ok := netlinkNames[protocol]; ok {
		return n
	}
	return strconv.Itoa(protocol)
}

// dumpableProtos are the socket protocols CRIU 4.2 dumps, as the kernel
// names them in a socket's system.sockprotoname attribute (struct proto's
// name): unix, inet (tcp, udp, udplite, raw, icmp "ping"), packet, netlink.
var dumpableProtos = map[string]bool{
	"UNIX": true, "UNIX-STREAM": true,
	"TCP": true, "TCPv6": true, "UDP": true, "UDPv6": true, "UDP-Lite": true, "UDPLITEv6": true,
	"RAW": true, "RAWv6": true, "PING": true, "PINGv6": true,
	"PACKET": true, "NETLINK": true,
}

// sockProtoName reads a socket's protocol name ("TCP", "UNIX-STREAM",
// "AF_VSOCK", ...) from its descriptor's system.sockprotoname attribute,
// which the kernel gives every socket: /proc/net's tables miss unbound
// sockets, which CRIU dumps all the same.
func sockProtoName(fdPath string) (string, error) {
	buf := make([]byte, 64)
	n, err := unix.Getxattr(fdPath, "system.sockprotoname", buf)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(buf[:n]), "\x00"), nil
}

// classifySocket says whether a socket blocks a dump, given its protocol
// name and the netlink sockets of its network namespace. A netlink socket
// blocks only while messages are queued on it: CRIU refuses one with data
// to read ("The socket has data to read").
func classifySocket(proto string, ino uint64, t *netTables) (what, fix string, bad bool) {
	if !dumpableProtos[proto] {
		return fmt.Sprintf("%s socket", proto), "stop the process that holds it: CRIU dumps only unix, inet, packet and netlink sockets", true
	}
	if proto != "NETLINK" || t == nil {
		return "", "", false
	}
	if nl, ok := t.netlink[ino]; ok && nl.rmem > 0 {
		return fmt.Sprintf("netlink %s socket with %d bytes of unread messages", netlinkName(nl.protocol), nl.rmem),
			"try again: CRIU cannot dump a netlink socket's queue (it is usually read within milliseconds)", true
	}
	return "", "", false
}

// fuseMount is a FUSE mount in a mountinfo.
type fuseMount struct{ point, fstype string }

// viewsFSType is the type of lodge's own /proc and /sys views (lodge-lxcfs):
// the checkpoint declares them external, so they block nothing.
const viewsFSType = "fuse.lodge-lxcfs"

// fuseMounts lists the FUSE mounts (fstype fuse, fuse.* or fuseblk) in a
// /proc/PID/mountinfo text, except lodge's views.
func fuseMounts(mountinfo string) []fuseMount {
	var out []fuseMount
	for _, line := range strings.Split(mountinfo, "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(g) < 1 {
			continue
		}
		if fs := g[0]; fs != viewsFSType && (fs == "fuse" || fs == "fuseblk" || strings.HasPrefix(fs, "fuse.")) {
			out = append(out, fuseMount{point: unescapeMountinfo(f[4]), fstype: fs})
		}
	}
	return out
}

// unescapeMountinfo undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
