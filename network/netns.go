package network

import (
	"runtime"

	"github.com/vishvananda/netns"
)

// inNetNS runs f on a locked OS thread moved into the network namespace
// nsFD (the caller's own when nsFD < 0), then moves the thread back. It is
// for what netlink handles cannot do: a raw socket, /proc/thread-self/net
// and /proc/sys/net of that namespace. If the thread cannot return it stays
// locked, and Go ends it with the goroutine instead of reusing it.
func inNetNS(nsFD int, f func() error) error {
	if nsFD < 0 {
		return f()
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	if err := netns.Set(netns.NsHandle(nsFD)); err != nil {
		runtime.UnlockOSThread()
		return err
	}
	ferr := f()
	if netns.Set(orig) == nil {
		runtime.UnlockOSThread()
	}
	return ferr
}
