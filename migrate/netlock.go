package migrate

import (
	"fmt"
	"os"
	"strconv"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
)

// restoreLockTable is the nftables table lodge puts in a restored
// container's network namespace from the moment CRIU creates it until
// CRIU unlocks the network.
//
// Why: CRIU locks the namespace of a restore with the rules it dumped (its
// own lock table among them), and it restores those rules only after the
// interfaces are up and their addresses are back. In that window (about
// 250 ms here, the time CRIU's iptables-restore runs take) the namespace
// answers a segment of a restored TCP connection with a reset, as there is
// no socket for it yet: the peer drops the connection, and the socket CRIU
// restores a moment later is reset in turn. A migration made that window
// real: the interface's first frames teach the bridges where the container
// now is, so the peer's next segment arrives during it
// (tests/remote_migrate_tcp_test.go lost its connection one round in three).
const restoreLockTable = "lodge-restore-lock"

// soccrMark is the packet mark CRIU's own lock lets through (SOCCR_MARK in
// CRIU's soccr/soccr.h): the packets CRIU itself sends while it restores
// a connection.
const soccrMark = 0xC114

// restoreLock is the lock table of one restore's network namespace.
type restoreLock struct {
	ns *os.File // the namespace, held open until the lock is gone
}

// lockRestoredNetwork installs the lock table in the network namespace of
// pid (the restored root task, from CRIU's setup-namespaces notification):
// input and output dropped, but for CRIU's marked packets, as CRIU's own
// lock does.
func lockRestoredNetwork(pid int) (*restoreLock, error) {
	ns, err := os.Open("/proc/" + strconv.Itoa(pid) + "/ns/net")
	if err != nil {
		return nil, fmt.Errorf("lock the restored network: %w", err)
	}
	conn, err := nftables.New(nftables.WithNetNSFd(int(ns.Fd())))
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("lock the restored network: %w", err)
	}
	table := conn.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: restoreLockTable})
	drop := nftables.ChainPolicyDrop
	for _, c := range []struct {
		name string
		hook *nftables.ChainHook
	}{{"input", nftables.ChainHookInput}, {"output", nftables.ChainHookOutput}} {
		chain := conn.AddChain(&nftables.Chain{
			Name: c.name, Table: table, Type: nftables.ChainTypeFilter,
			Hooknum: c.hook, Priority: nftables.ChainPriorityFilter, Policy: &drop,
		})
		conn.AddRule(&nftables.Rule{Table: table, Chain: chain, Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(soccrMark)},
			&expr.Verdict{Kind: expr.VerdictAccept},
		}})
	}
	if err := conn.Flush(); err != nil {
		ns.Close()
		return nil, fmt.Errorf("lock the restored network: %w", err)
	}
	return &restoreLock{ns: ns}, nil
}

// unlock removes the lock table; a lock already gone is no error, so that
// unlock can be called again after the restore to make sure.
func (l *restoreLock) unlock() error {
	if l == nil || l.ns == nil {
		return nil
	}
	conn, err := nftables.New(nftables.WithNetNSFd(int(l.ns.Fd())))
	if err != nil {
		return fmt.Errorf("unlock the restored network: %w", err)
	}
	tables, err := conn.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return fmt.Errorf("unlock the restored network: %w", err)
	}
	for _, t := range tables {
		if t.Name == restoreLockTable {
			conn.DelTable(t)
			if err := conn.Flush(); err != nil {
				return fmt.Errorf("unlock the restored network: %w", err)
			}
		}
	}
	return nil
}

// close lets go of the namespace.
func (l *restoreLock) close() {
	if l != nil && l.ns != nil {
		l.ns.Close()
		l.ns = nil
	}
}

// UnlockRestoredNetwork removes the lock table a held restore left in the
// network namespace of pid (RestoreRequest.Hold); none there is no error.
func UnlockRestoredNetwork(pid int) error {
	ns, err := os.Open("/proc/" + strconv.Itoa(pid) + "/ns/net")
	if err != nil {
		return fmt.Errorf("unlock the restored network: %w", err)
	}
	l := &restoreLock{ns: ns}
	defer l.close()
	return l.unlock()
}
