package cgroup

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"lodge/internal/testreq"
)

// TestNotifyOnChangePollPri: the cgroup2 OOM notifier is the open file polled
// for POLLPRI, which kernfs raises on every cgroup_file_notify of the file
// and a read re-arms. memory.events can only be watched where cgroup2 has
// the memory controller; cgroup.events, which the kernel notifies the same
// way (on populated and frozen), is there on every cgroup2 group, so this
// checks the mechanism on it: news when a process enters the group and when
// it leaves, and none in between.
func TestNotifyOnChangePollPri(t *testing.T) {
	h := rootHost(t)
	g := testGroup(t, h, "notify")
	if err := g.Create(); err != nil {
		t.Fatal(err)
	}
	d, ok := g.unified()
	if !ok {
		testreq.Skip(t, "cgroup2", "no cgroup2 hierarchy on this host")
	}
	n, err := notifyOnChange(filepath.Join(d.path, "cgroup.events"))
	if err != nil {
		t.Fatal(err)
	}
	defer n.File.Close()
	if !n.Unified() {
		t.Fatal("a cgroup2 notifier that does not say so")
	}
	// Whatever the file holds since it was opened is consumed first.
	n.Wait(closedPipe(t))

	p := startSleep(t)
	if err := g.AddProcess(p.pid); err != nil {
		t.Fatal(err)
	}
	if !waitNews(t, n) {
		t.Fatal("populated: no POLLPRI")
	}
	// Consumed: with nothing new, only the (always ready) stop is.
	if news, err := n.Wait(closedPipe(t)); err != nil || news {
		t.Fatalf("nothing changed: Wait = %v, %v; want no news", news, err)
	}
	p.cmd.Process.Kill()
	<-p.done
	// The kernel may hold this one back a little (cgroup_file_notify
	// notifies a file at most every 20 ms): waitNews blocks.
	if !waitNews(t, n) {
		t.Fatal("unpopulated: no POLLPRI")
	}
}

// closedPipe returns a pipe's read end whose write end is closed: always
// ready, a stop that tells Wait not to block.
func closedPipe(t *testing.T) *os.File {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	t.Cleanup(func() { r.Close() })
	return r
}

// waitNews waits for news on n, with a hang guard of a minute (not a
// timing assertion): it says whether news came.
func waitNews(t *testing.T, n *OOMNotifier) bool {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	guard := time.AfterFunc(time.Minute, func() { w.Close() })
	defer func() {
		if guard.Stop() {
			w.Close()
		}
	}()
	news, err := n.Wait(r)
	if err != nil {
		t.Fatal(err)
	}
	return news
}
