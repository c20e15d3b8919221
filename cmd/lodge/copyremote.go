package main

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// remoteCopy is lodge copy NAME REMOTE:NEW: the stopped container and its
// snapshots sent to the remote (Manager.CopyTo), progress on stderr.
func remoteCopy(ctx context.Context, a *app, name, remote, newName, format string) error {
	if newName == "" {
		newName = name
	}
	m, err := a.manager()
	if err != nil {
		return err
	}
	c, err := a.remoteClient(remote)
	if err != nil {
		return err
	}
	ctx, stop := interruptible(ctx)
	defer stop()
	res, err := m.CopyTo(ctx, name, newName, c.Target(), a.progress)
	if err != nil {
		return err
	}
	if format == "json" {
		return writeJSON(a.stdout, map[string]any{
			"name": res.Name, "remote": remote, "source": res.Source, "backend": res.Backend,
			"snapshots": res.Snapshots, "bytes": res.Bytes, "total_ms": res.Total.Milliseconds(),
			"host_id": res.HostID, "id_count": res.IDCount, "nics": res.NICs,
		})
	}
	snaps := "no snapshots"
	if len(res.Snapshots) > 0 {
		snaps = fmt.Sprintf("snapshots %s", strings.Join(res.Snapshots, ", "))
	}
	fmt.Fprintf(a.stdout, "Copied %s to %s:%s (%s storage, %s): %s sent in %s; its ids there are %d-%d.\n",
		name, remote, res.Name, res.Backend, snaps, humanBytes(res.Bytes), res.Total.Round(time.Millisecond), res.HostID, res.HostID+res.IDCount-1)
	for _, n := range res.NICs {
		fmt.Fprintf(a.stdout, "  %s: new MAC %s (DHCP)\n", n.Name, n.HWAddr)
	}
	return nil
}
