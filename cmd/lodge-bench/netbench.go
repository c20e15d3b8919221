package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"

	"lodge/network"
)

// The network group: TCP throughput and round-trip time over a container's
// veth and bridge, for lodge, for LXC and for the floor, two plain network
// namespaces joined by a veth pair; and the start latency of a container
// with one NIC.
//
// iperf3 and ping are the host's (Debian packages iperf3 and iputils-ping),
// run by nsenter in a container's network namespace only, so a busybox
// container needs neither and the path measured is the container's veth
// and bridge, not its userspace. Nothing is routed off the machine: every
// subnet is the benchmark's own, from 10.0.0.0/8 and unused on the host,
// with no NAT and no default route.

func networkGroup() group {
	return group{Name: "network", Title: "Network", Run: runNetwork}
}

// vethPair names the floor's samples ("LXC" and "lodge" are the others').
const vethPair = "veth"

// Paths measured: container to container, host to container.
const (
	pathC2C = "container to container"
	pathH2C = "host to container"
)

var targetNearVeth = &target{Text: "within 5% of the veth pair", MinRatio: 0.95}

// endpoint is one side of a measurement: a network namespace ("" for the
// host's) and an address in it.
type endpoint struct {
	netns string // e.g. /proc/PID/ns/net, /run/netns/NAME
	addr  string
}

// argv runs command in the endpoint's network namespace.
func (e endpoint) argv(command ...string) []string {
	if e.netns == "" {
		return command
	}
	return append([]string{"nsenter", "--net=" + e.netns, "--"}, command...)
}

// netSubject is one path of one runtime: a client sending to a server.
type netSubject struct {
	runtime, path  string
	client, server endpoint
}

// netRun is the state of one run of the group; undo runs last first.
type netRun struct {
	b        *bench
	res      *groupResult
	subjects []netSubject
	servers  []*exec.Cmd
	undo     []func() error
	lodgeErr error // why lodge's rows could not be measured
	starts   []runtime
}

func runNetwork(b *bench) (res *groupResult, err error) {
	n := &netRun{b: b, res: &groupResult{Method: networkMethod(b)}}
	defer func() {
		if cerr := n.cleanup(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("network clean-up: %w", cerr))
		}
	}()
	for _, tool := range []string{"iperf3", "ping", "nsenter", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			return n.res, fmt.Errorf("%s not found: make bench installs iperf3, iputils-ping and iproute2", tool)
		}
	}
	subnets, err := freeSubnets(b.id, 3)
	if err != nil {
		return n.res, err
	}
	if err := n.setupVethPair(subnets[0]); err != nil {
		return n.res, fmt.Errorf("the plain veth pair: %w", err)
	}
	if err := n.setupLXC(subnets[1]); err != nil {
		return n.res, fmt.Errorf("LXC on a bridge: %w", err)
	}
	if err := n.setupLodge(subnets[2]); err != nil {
		n.lodgeErr = err
		b.logf("network: lodge not available: %v", err)
		n.res.Notes = append(n.res.Notes, "lodge: not available: "+err.Error())
	}
	for _, s := range n.subjects {
		if err := n.startServer(s.server); err != nil {
			return n.res, err
		}
	}
	thr, rtt, err := n.measureTraffic()
	n.res.Rows = n.trafficRows(thr, rtt)
	n.res.Notes = append(n.res.Notes, trafficNotes(thr, rtt)...)
	if err != nil {
		return n.res, err
	}
	if err := n.stopServers(); err != nil {
		return n.res, err
	}
	start := samples{}
	if err = n.measureStarts(start); err != nil {
		return n.res, err
	}
	r := newRow("start latency, one NIC", latency, start, targetFaster2x)
	if n.lodgeErr != nil {
		r.Unavailable = n.lodgeErr.Error()
	}
	n.res.Rows = append(n.res.Rows, r)
	return n.res, nil
}

// freeSubnets picks count /24s of 10.0.0.0/8 that no address or route of
// the host overlaps, seeded by the run's id.
func freeSubnets(id string, count int) ([]netip.Prefix, error) {
	h, err := netlink.NewHandle()
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()
	taken, err := network.UsedPrefixes(h)
	if err != nil {
		return nil, err
	}
	var picked []netip.Prefix
	for i := range count {
		p, err := network.AllocateIPv4(netip.MustParsePrefix("10.0.0.0/8"), taken, fmt.Sprintf("lodge-bench-%s-%d", id, i))
		if err != nil {
			return nil, err
		}
		picked = append(picked, p)
		taken = append(taken, p)
	}
	return picked, nil
}

// host returns the n-th address of subnet (.1 is the gateway or bridge).
func host(subnet netip.Prefix, n int) netip.Addr {
	a := subnet.Addr()
	for range n {
		a = a.Next()
	}
	return a
}

func (n *netRun) onUndo(fn func() error) { n.undo = append(n.undo, fn) }

func (n *netRun) cleanup() error {
	errs := []error{n.stopServers()}
	for i := len(n.undo) - 1; i >= 0; i-- {
		errs = append(errs, n.undo[i]())
	}
	n.undo = nil
	return errors.Join(errs...)
}

func (n *netRun) ip(args ...string) error {
	_, err := n.b.run.output(append([]string{"ip"}, args...)...)
	return err
}

// setupVethPair makes the floor: namespaces A and B joined by a veth pair,
// both ends named eth0, nothing on the host's side.
func (n *netRun) setupVethPair(subnet netip.Prefix) error {
	nsA, nsB := "lodge-bench-"+n.b.id+"-a", "lodge-bench-"+n.b.id+"-b"
	bits := strconv.Itoa(subnet.Bits())
	a, c := host(subnet, 1), host(subnet, 2)
	for _, ns := range []string{nsA, nsB} {
		if err := n.ip("netns", "add", ns); err != nil {
			return err
		}
		n.onUndo(func() error { return n.ip("netns", "delete", ns) })
	}
	steps := [][]string{
		{"-n", nsA, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", nsB},
		{"-n", nsA, "addr", "add", a.String() + "/" + bits, "dev", "eth0"},
		{"-n", nsB, "addr", "add", c.String() + "/" + bits, "dev", "eth0"},
	}
	for _, ns := range []string{nsA, nsB} {
		steps = append(steps, []string{"-n", ns, "link", "set", "lo", "up"}, []string{"-n", ns, "link", "set", "eth0", "up"})
	}
	for _, s := range steps {
		if err := n.ip(s...); err != nil {
			return err
		}
	}
	n.res.Commands = append(n.res.Commands, "ip netns add "+nsA+"; ip netns add "+nsB,
		"ip -n "+nsA+" link add eth0 type veth peer name eth0 netns "+nsB+"  # then addresses "+a.String()+", "+c.String()+"/"+bits+", links up")
	n.subjects = append(n.subjects, netSubject{vethPair, pathC2C,
		endpoint{"/run/netns/" + nsA, a.String()}, endpoint{"/run/netns/" + nsB, c.String()}})
	return nil
}

// netContainer is a runtime's container with a NIC, for the start rows.
type netContainer struct {
	runtime
	name string
}

func (c netContainer) Container(int) string { return c.name }

// setupLXC makes a bridge with an address on the host and two LXC busybox
// containers with a veth on it and a static address each, and starts them.
func (n *netRun) setupLXC(subnet netip.Prefix) error {
	b, x := n.b, n.b.lxc
	br := "lbb" + b.id
	bits := strconv.Itoa(subnet.Bits())
	gw := host(subnet, 1)
	if err := n.ip("link", "add", br, "type", "bridge"); err != nil {
		return err
	}
	n.onUndo(func() error { return n.ip("link", "delete", br) })
	if err := n.ip("addr", "add", gw.String()+"/"+bits, "dev", br); err != nil {
		return err
	}
	if err := n.ip("link", "set", br, "up"); err != nil {
		return err
	}
	n.res.Commands = append(n.res.Commands, "ip link add "+br+" type bridge; ip addr add "+gw.String()+"/"+bits+" dev "+br+"; ip link set "+br+" up")
	var eps []endpoint
	for i := 1; i <= 2; i++ {
		name := fmt.Sprintf("net%d", i)
		addr := host(subnet, 10+i)
		conf := filepath.Join(b.tmp, "lxc-create-"+name+".conf")
		text := fmt.Sprintf("lxc.net.0.type = veth\nlxc.net.0.link = %s\nlxc.net.0.flags = up\nlxc.net.0.name = eth0\nlxc.net.0.ipv4.address = %s/%s\n", br, addr, bits)
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			return err
		}
		argv := x.tool("lxc-create", "-n", name, "-P", x.path, "-t", "busybox", "-f", conf)
		x.created = append(x.created, name) // its cleanup, should this fail half-way
		if _, err := b.run.output(argv...); err != nil {
			return err
		}
		n.onUndo(func() error { return x.Destroy(name) })
		if err := x.makeUnprivileged(name); err != nil {
			return err
		}
		// The template's rcS runs udhcpc, whose deconfig flushes eth0's
		// address; there is no DHCP server here.
		rcS := filepath.Join(x.path, name, "rootfs", "etc", "init.d", "rcS")
		if err := dropLine(rcS, "/bin/udhcpc"); err != nil {
			return err
		}
		if i == 1 {
			n.res.Commands = append(n.res.Commands, "# "+b.display(conf)+":")
			for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
				n.res.Commands = append(n.res.Commands, "#   "+l)
			}
			n.res.Commands = append(n.res.Commands, b.run.display(argv), "# then remove /bin/udhcpc from its rootfs's /etc/init.d/rcS")
		}
		ep, err := n.startWithNIC(x, name, addr)
		if err != nil {
			return err
		}
		eps = append(eps, ep)
	}
	n.starts = append(n.starts, netContainer{x, "net1"})
	n.subjects = append(n.subjects,
		netSubject{"LXC", pathC2C, eps[0], eps[1]},
		netSubject{"LXC", pathH2C, endpoint{"", gw.String()}, eps[1]})
	return nil
}

// setupLodge makes a lodge network and two busybox containers on it with
// a static address each, and starts them. An error means lodge's rows
// cannot be measured; the others still are.
func (n *netRun) setupLodge(subnet netip.Prefix) error {
	b, l := n.b, n.b.lodge
	netName := "lbn" + b.id
	create := l.argv("network", "create", netName, "--subnet", subnet.String())
	n.res.Commands = append(n.res.Commands, b.run.display(create))
	if _, err := b.run.output(create...); err != nil {
		return err
	}
	n.onUndo(func() error {
		_, err := b.run.output(l.argv("network", "delete", netName)...)
		return err
	})
	var eps []endpoint
	for i := 1; i <= 2; i++ {
		name := fmt.Sprintf("net%d", i)
		addr := host(subnet, 10+i)
		set := l.argv("config", "set", name, "network.0.network="+netName, "network.0.ipv4="+addr.String())
		if i == 1 {
			n.res.Commands = append(n.res.Commands, b.run.display(l.CreateCmd(name)), b.run.display(set))
		}
		if _, err := b.run.output(l.CreateCmd(name)...); err != nil {
			return err
		}
		n.onUndo(func() error { return l.Destroy(name) })
		if _, err := b.run.output(set...); err != nil {
			return err
		}
		ep, err := n.startWithNIC(l, name, addr)
		if err != nil {
			return err
		}
		eps = append(eps, ep)
	}
	n.starts = append([]runtime{netContainer{l, "net1"}}, n.starts...)
	n.subjects = append(n.subjects,
		netSubject{"lodge", pathC2C, eps[0], eps[1]},
		netSubject{"lodge", pathH2C, endpoint{"", network.Gateway(subnet).Addr().String()}, eps[1]})
	return nil
}

// startWithNIC starts a container and checks that its network namespace
// has eth0 with addr.
func (n *netRun) startWithNIC(rt runtime, name string, addr netip.Addr) (endpoint, error) {
	if _, err := n.b.run.timed(rt.StartCmd(name)); err != nil {
		return endpoint{}, err
	}
	p, err := checkRunning(rt, name)
	if err != nil {
		return endpoint{}, err
	}
	ep := endpoint{fmt.Sprintf("/proc/%d/ns/net", p.Init), addr.String()}
	out, err := n.b.run.output(ep.argv("ip", "-o", "-4", "addr", "show", "dev", "eth0")...)
	if err != nil {
		return ep, fmt.Errorf("%s container %s has no eth0 after start: %w", rt.Name(), name, err)
	}
	if !strings.Contains(out, " "+addr.String()+"/") {
		return ep, fmt.Errorf("%s container %s: its eth0 lacks %s after start: %s", rt.Name(), name, addr, strings.TrimSpace(out))
	}
	return ep, nil
}

// dropLine removes the lines equal to line from file path.
func dropLine(path, line string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var kept []string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(l) != line {
			kept = append(kept, l)
		}
	}
	return os.WriteFile(path, []byte(strings.Join(kept, "\n")), 0o744)
}

// startServer runs an iperf3 server in the endpoint's namespace until the
// group ends.
func (n *netRun) startServer(e endpoint) error {
	argv := e.argv("iperf3", "-s", "-B", e.addr)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = n.b.run.env
	if err := cmd.Start(); err != nil {
		return err
	}
	n.servers = append(n.servers, cmd)
	return nil
}

// stopServers ends the iperf3 servers this group started, by their pids.
func (n *netRun) stopServers() error {
	for _, cmd := range n.servers {
		cmd.Process.Kill()
		cmd.Wait()
	}
	n.servers = nil
	return nil
}

// procPID matches a process's directory in commands shown in the report.
var procPID = regexp.MustCompile(`/proc/[0-9]+/`)

// sampleSet is one metric's samples per path.
type sampleSet map[string]samples

func (s sampleSet) add(path, runtime string, v float64) {
	if s[path] == nil {
		s[path] = samples{}
	}
	s[path].add(runtime, v)
}

// measureTraffic runs, in rotating order, an iperf3 client and then ping
// for every subject, each round.
func (n *netRun) measureTraffic() (thr, rtt sampleSet, err error) {
	b := n.b
	thr, rtt = sampleSet{}, sampleSet{}
	for _, s := range n.subjects {
		for _, argv := range [][]string{n.iperf(s), n.ping(s)} {
			n.res.Commands = append(n.res.Commands, procPID.ReplaceAllString(b.run.display(argv), "/proc/PID/"))
		}
	}
	b.sleep(bootSettle) // the servers listen
	err = inTurn(b, b.opts.netRounds, n.subjects, func(round int, s netSubject) error {
		bps, err := n.throughput(s)
		if err != nil {
			return err
		}
		thr.add(s.path, s.runtime, bps/1e9)
		times, err := n.rtts(s)
		if err != nil {
			return err
		}
		for _, t := range times {
			rtt.add(s.path, s.runtime, t)
		}
		return nil
	})
	return thr, rtt, err
}

func (n *netRun) iperf(s netSubject) []string {
	secs := strconv.Itoa(int(n.b.opts.netTime.Round(time.Second).Seconds()))
	return s.client.argv("iperf3", "-c", s.server.addr, "-t", secs, "-J")
}

func (n *netRun) ping(s netSubject) []string {
	return s.client.argv("ping", "-n", "-c", strconv.Itoa(n.b.opts.pingCount), "-i", "0.01", s.server.addr)
}

// throughput is iperf3's received bits per second; the first connection
// to a server just started is tried again once.
func (n *netRun) throughput(s netSubject) (float64, error) {
	out, err := n.b.run.output(n.iperf(s)...)
	if err != nil {
		n.b.sleep(time.Second)
		out, err = n.b.run.output(n.iperf(s)...)
	}
	if err != nil {
		return 0, fmt.Errorf("%s, %s: %w", s.runtime, s.path, err)
	}
	var r struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		return 0, fmt.Errorf("iperf3 -J: %w", err)
	}
	if r.Error != "" || r.End.SumReceived.BitsPerSecond <= 0 {
		return 0, fmt.Errorf("%s, %s: iperf3: %q", s.runtime, s.path, r.Error)
	}
	return r.End.SumReceived.BitsPerSecond, nil
}

// rtts are ping's round-trip times in µs, one per reply.
func (n *netRun) rtts(s netSubject) ([]float64, error) {
	out, err := n.b.run.output(n.ping(s)...)
	if err != nil {
		return nil, fmt.Errorf("%s, %s: %w", s.runtime, s.path, err)
	}
	var times []float64
	for _, f := range strings.Fields(out) {
		if v, ok := strings.CutPrefix(f, "time="); ok {
			ms, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return nil, fmt.Errorf("ping: %q", f)
			}
			times = append(times, ms*1000)
		}
	}
	if len(times) == 0 {
		return nil, fmt.Errorf("%s, %s: ping printed no reply", s.runtime, s.path)
	}
	return times, nil
}

// trafficRows compares lodge with the veth pair (the target) and with LXC
// for each metric and path; the "LXC" column holds the peer the metric
// names.
func (n *netRun) trafficRows(thr, rtt sampleSet) []row {
	var rows []row
	for _, m := range []struct {
		metric string
		kind   kind
		set    sampleSet
	}{{"TCP throughput", throughput, thr}, {"round-trip time", roundTrip, rtt}} {
		for _, path := range []string{pathC2C, pathH2C} {
			s := m.set[path]
			if s == nil {
				s = samples{}
			}
			rows = append(rows,
				row{Metric: fmt.Sprintf("%s, %s, vs plain veth pair (in the LXC column)", m.metric, path), Kind: m.kind,
					Lodge: s["lodge"], LXC: m.set[pathC2C][vethPair], Target: targetNearVeth},
				row{Metric: fmt.Sprintf("%s, %s, vs LXC", m.metric, path), Kind: m.kind, Lodge: s["lodge"], LXC: s["LXC"]})
		}
	}
	if n.lodgeErr != nil {
		for i := range rows {
			rows[i].Unavailable = n.lodgeErr.Error()
		}
	}
	return rows
}

// trafficNotes states LXC against the floor, which the rows do not show.
func trafficNotes(thr, rtt sampleSet) []string {
	veth := summarize(thr[pathC2C][vethPair])
	vethRTT := summarize(rtt[pathC2C][vethPair])
	if veth.N == 0 || vethRTT.N == 0 {
		return nil
	}
	notes := []string{fmt.Sprintf("Plain veth pair: TCP %.2f Gbit/s (median of %d), round trip %.1f µs (median of %d replies).", veth.Median, veth.N, vethRTT.Median, vethRTT.N)}
	for _, path := range []string{pathC2C, pathH2C} {
		t, r := summarize(thr[path]["LXC"]), summarize(rtt[path]["LXC"])
		if t.N > 0 && r.N > 0 {
			notes = append(notes, fmt.Sprintf("LXC, %s: TCP %.2f Gbit/s (%.2fx the veth pair's), round trip %.1f µs (%.2fx the veth pair's).",
				path, t.Median, t.Median/veth.Median, r.Median, r.Median/vethRTT.Median))
		}
	}
	return notes
}

// measureStarts times start and forced stop of each runtime's first
// container with a NIC, as the start group does.
func (n *netRun) measureStarts(start samples) error {
	for _, rt := range n.starts {
		name := rt.Container(1)
		if err := n.b.ensureStopped(rt, name); err != nil {
			return err
		}
		n.res.Commands = append(n.res.Commands, n.b.commands(rt.StartCmd(name), rt.StopCmd(name, true))...)
	}
	return timeStartStop(n.b, n.starts, start, samples{})
}

func networkMethod(b *bench) []string {
	return []string{
		"Three set-ups, each on its own /24 of 10.0.0.0/8 that no address or route of the host overlaps, with no NAT, no default route " +
			"and nothing routed off the machine: the floor, two network namespaces (`ip netns add`) joined by a veth pair; LXC, two busybox " +
			"containers whose veths (`lxc.net.0.type = veth`, a static `lxc.net.0.ipv4.address`) are on a bridge the benchmark makes, with " +
			"an address on the host; lodge, two busybox containers on a lodge network (`lodge network create --subnet`) with a static " +
			"`network.0.ipv4` each. The LXC containers' rcS loses the template's `udhcpc` line (there is no DHCP server, and its " +
			"deconfig would flush the static address); LXC's lxc-net bridge is not used.",
		fmt.Sprintf("iperf3 and ping are the host's, run in a container's network namespace by `nsenter --net=/proc/PID/ns/net` "+
			"(PID: the container's init from `lodge info --format json` / `lxc-info -p`): the path measured is the container's veth "+
			"and bridge. An iperf3 server runs in the receiving container (the second namespace for the floor); container to "+
			"container, the client is in the first container; host to container, the client is on the host, sending to the "+
			"container over the bridge's address. Each round, in rotating order over the subjects: one TCP stream for %v "+
			"(`iperf3 -c -t -J`, **reported**: the receiver's bits per second) and then %d pings 10 ms apart (**reported**: each reply's "+
			"time). %d rounds; throughput is the median of the rounds, round trip the median of all replies.",
			b.opts.netTime, b.opts.pingCount, b.opts.netRounds),
		"One TCP stream between two namespaces of one machine is bound by CPU (sender and receiver share its cores), so its rate " +
			"moves with whatever else runs: on a busy machine the same path varies by tens of percent from run to run (compare " +
			"median and p90). Short runs in many rotating rounds give every subject the same share of that noise; a 5% target " +
			"means something only on an otherwise idle machine.",
		"The rows compare lodge with the veth pair (target: within 5%: throughput at least 0.95x the pair's, round trip at most " +
			"1/0.95 of it) and with LXC; the floor and LXC are in the notes. Ratio: lodge / peer for throughput, peer / lodge for " +
			"round trips, so above 1 is lodge better.",
		"Start latency with one NIC: the first container of lodge and of LXC above, with their NIC, started and stopped forcibly as " +
			"in the start group (same rounds, same pauses, same checks).",
	}
}
