package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"lodge/manager"
	"lodge/remote/server"
)

// remoteCopy is lodge copy between this host and a remote: NAME REMOTE:NEW
// sends the stopped container and its snapshots there (Manager.CopyTo);
// REMOTE:NAME NEW has the remote send its container here (to its remote
// for this host, through this host's lodge serve). Progress on stderr.
func remoteCopy(ctx context.Context, a *app, src, dst, format string) error {
	ctx, stop := interruptible(ctx)
	defer stop()
	if remote, name, ok := splitRemote(src); ok {
		newName := dst
		if _, err := a.manager(); err != nil {
			return err // root, as every command that writes ROOT
		}
		cert, err := server.HostCert(a.root)
		if err != nil {
			return err
		}
		c, err := a.remoteClient(remote)
		if err != nil {
			return err
		}
		res, err := c.CopyOut(ctx, name, newName, cert.Fingerprint, a.progress)
		if err != nil {
			return err
		}
		return printRemoteCopy(a, format, remote+":"+name, newName, remote, res)
	}
	remote, newName, _ := splitRemote(dst)
	if newName == "" {
		newName = src
	}
	m, err := a.manager()
	if err != nil {
		return err
	}
	c, err := a.remoteClient(remote)
	if err != nil {
		return err
	}
	res, err := m.CopyTo(ctx, src, newName, c.Target(), a.progress)
	if err != nil {
		return err
	}
	return printRemoteCopy(a, format, src, remote+":"+res.Name, remote, res)
}

// printRemoteCopy prints a copy between hosts: from and to as the user
// named them, remote the other host.
func printRemoteCopy(a *app, format, from, to, remote string, res manager.CopyToResult) error {
	if format == "json" {
		if res.NICs == nil {
			res.NICs = []manager.CopiedNIC{}
		}
		return writeJSON(a.stdout, map[string]any{
			"name": res.Name, "remote": remote, "from": from, "to": to, "source": res.Source, "backend": res.Backend,
			"snapshots": res.Snapshots, "bytes": res.Bytes, "total_ms": res.Total.Milliseconds(),
			"host_id": res.HostID, "id_count": res.IDCount, "nics": res.NICs,
		})
	}
	snaps := "no snapshots"
	if len(res.Snapshots) > 0 {
		snaps = fmt.Sprintf("snapshots %s", strings.Join(res.Snapshots, ", "))
	}
	fmt.Fprintf(a.stdout, "Copied %s to %s (%s storage, %s): %s sent in %s; its ids are %d-%d.\n",
		from, to, res.Backend, snaps, humanBytes(res.Bytes), res.Total.Round(time.Millisecond), res.HostID, res.HostID+res.IDCount-1)
	for _, n := range res.NICs {
		fmt.Fprintf(a.stdout, "  %s: new MAC %s (DHCP)\n", n.Name, n.HWAddr)
	}
	return nil
}
