package network

import (
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
)

// throughput sends from a to b's addr:7778 for about d over TCP and returns
// what b received, in Mbit/s.
func throughput(t *testing.T, a, b *container, addr netip.Addr, d time.Duration) float64 {
	t.Helper()
	var l net.Listener
	if err := inNetNS(b.nsFD, func() (err error) {
		l, err = net.Listen("tcp", netip.AddrPortFrom(addr, 7778).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	type result struct {
		n       int64
		elapsed time.Duration
	}
	done := make(chan result, 1)
	go func() {
		conn, err := l.Accept()
		if err != nil {
			done <- result{}
			return
		}
		defer conn.Close()
		start := time.Now()
		n, _ := io.Copy(io.Discard, conn)
		done <- result{n, time.Since(start)}
	}()
	var conn net.Conn
	if err := inNetNS(a.nsFD, func() (err error) {
		conn, err = net.DialTimeout("tcp", netip.AddrPortFrom(addr, 7778).String(), 3*time.Second)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	for end := time.Now().Add(d); time.Now().Before(end); {
		if _, err := conn.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	conn.Close()
	r := <-done
	return float64(r.n) * 8 / r.elapsed.Seconds() / 1e6
}

// TestLimits measures TCP between two namespaces on a bridge, unlimited,
// with an ingress limit on the receiver, with an egress limit on the
// sender (changed on the fly) and after removing both. Rates are logged;
// the only check is that a limit is well below the unlimited rate and that
// removing it brings the rate back well above the limit (no timing asserts).
func TestLimits(t *testing.T) {
	needRoot(t)
	if testing.Short() {
		t.Skip("measures for seconds")
	}
	h := hostHandle(t)
	bc := testNetwork(t, h)
	a, b := startContainer(t), startContainer(t)
	na, nb := addTestNIC(t, h, bc, a, "la", 2), addTestNIC(t, h, bc, b, "lb", 3)
	dst, d := nb.IPv4.Addr(), 2*time.Second
	measure := func(what string, limit uint64) float64 {
		r := throughput(t, a, b, dst, d)
		t.Logf("%-40s limit %4d Mbit/s: measured %8.1f Mbit/s", what, limit/1e6, r)
		return r
	}
	set := func(n NIC, l Limits) {
		if err := SetLimits(h, n.Container, n.Name, l); err != nil {
			t.Fatal(err)
		}
	}
	full := measure("unlimited", 0)
	steps := []struct {
		what string
		nic  NIC
		l    Limits
		rate uint64
	}{
		{"receiver's ingress (tbf on its veth)", nb, Limits{Ingress: 10e6}, 10e6},
		{"receiver's ingress changed", nb, Limits{Ingress: 50e6}, 50e6},
		{"receiver's ingress removed", nb, Limits{}, 0},
		{"sender's egress (ifb)", na, Limits{Egress: 20e6}, 20e6},
		{"sender's egress changed", na, Limits{Egress: 50e6}, 50e6},
		{"sender's egress removed", na, Limits{}, 0},
	}
	for _, s := range steps {
		set(s.nic, s.l)
		got := measure(s.what, s.rate)
		switch {
		case s.rate != 0 && full > 8*float64(s.rate)/1e6 && got > full/4:
			t.Errorf("%s: %.1f Mbit/s is not well below the unlimited %.1f", s.what, got, full)
		case s.rate == 0 && full > 8*50 && got < 4*50:
			t.Errorf("%s: %.1f Mbit/s, barely above the old limit (unlimited was %.1f)", s.what, got, full)
		}
	}
	if _, err := h.LinkByName(IfbName(na.Container, na.Name)); err == nil {
		t.Error("the ifb is still there after the egress limit was removed")
	}
	set(na, Limits{Egress: 10e6})
	if err := RemoveNIC(h, na.Container, na.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := h.LinkByName(IfbName(na.Container, na.Name)); err == nil {
		t.Error("RemoveNIC left the ifb")
	}
}
