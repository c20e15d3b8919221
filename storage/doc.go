// Package storage owns where a container's root filesystem lives and how it
// is made, copied and rolled back: one small Backend interface, and the
// backends behind it: "dir", a plain directory tree copied with reflinks
// where the filesystem shares blocks and a parallel copy where it does not,
// and "overlay", an upper directory over shared immutable layers and the
// image (overlay.go; its trees are not the merged root: read and write
// those through OpenView).
//
// # The contract every backend keeps
//
// Paths: the caller (manager, through internal/store) chooses every path; a
// backend never invents a location outside the parents of the paths it is
// given. A destination must not exist; the backend makes it.
//
// Atomicity: an operation interrupted at any point (an error, a cancelled
// context, kill -9, a full disk) leaves either the old state or the complete
// new one at the path the caller named, never half of one. Backends build
// under a temporary name in the destination's directory (TempPrefix) and
// rename into place as the last step; a restore builds the restored tree
// under a temporary name and swaps it in with one renameat2(RENAME_EXCHANGE).
// What an interrupted operation leaves behind is only ever a TempPrefix entry,
// which RemoveStale deletes (callers run it under the container's lock).
//
// Ownership: no backend ever changes an owner to shift ids. Files keep their
// natural ids on disk (root is 0, whatever range the container runs in);
// idmapped mounts shift them at mount time. Copies keep every owner exactly
// as the source has it, as `cp -a` does.
//
// Quotas: SetQuota either enforces the limit or returns a *QuotaError saying
// why it cannot (errors.Is(err, ErrQuotaUnsupported)); a limit is never
// silently ignored.
//
// Snapshots are read-only by convention: a snapshot is a tree at a path the
// caller chose (ROOT/containers/NAME/snapshots/SNAP, say); Restore copies it
// back and leaves it in place, so any snapshot can be restored in any order
// and the others, newer ones included, stay.
//
// Which backend a container uses is recorded in the container's directory
// (Record, storage.json), so that a host whose default backend changes still
// deletes and copies each container with the backend that made it.
package storage
