package storage

import "golang.org/x/sys/unix"

// QuickUsager is a Backend that knows a tree's disk usage without walking
// it: what a metrics scrape, which asks for every container's at each
// scrape, can afford. Backends that would walk the tree (dir, overlay's
// upper directory) or mount something (overlay's disk image) do not
// implement it.
type QuickUsager interface {
	// QuickUsage reports the tree's usage; ok is false when it cannot be
	// known cheaply right now (btrfs without quotas).
	QuickUsage(path string) (u Usage, ok bool, err error)
}

// QuickUsage implements QuickUsager: the subvolume's qgroup referenced
// bytes, as Usage reports them but without its sync, so as of the last
// transaction commit (at most the commit interval, 30 s by default, old).
func (b *Btrfs) QuickUsage(path string) (Usage, bool, error) {
	if !isSubvolume(path) {
		return Usage{}, false, nil
	}
	q, ok, err := readQgroup(path)
	if err != nil || !ok || !q.consistent {
		return Usage{}, false, err
	}
	return Usage{Bytes: q.referenced}, true, nil
}

// QuickUsageUnder tells whether any tree under the lodge root root may
// have a QuickUsage: only btrfs trees do, and the btrfs backend needs the
// root on btrfs. One statfs spares a scrape reading every container's
// storage record for nothing.
func QuickUsageUnder(root string) bool {
	var st unix.Statfs_t
	return unix.Statfs(root, &st) != nil || st.Type == unix.BTRFS_SUPER_MAGIC
}

var _ QuickUsager = (*Btrfs)(nil)
