// Package idmap allocates each container its own range of host uids and gids
// (the same numbers for both) from a pool set in the host config, and keeps the
// table of allocations in one file, so that no two containers ever share an id.
//
// A range is recorded by its first host id and size, not by its index in the
// pool, so allocations stay valid when the pool config changes; a new
// allocation never overlaps any recorded one, in the pool or not.
package idmap

import (
	"fmt"
	"syscall"
)

// Range is a block of host ids: container id 0 maps to host id HostID and
// container id Size-1 to HostID+Size-1.
type Range struct {
	HostID uint32 `json:"host_id"`
	Size   uint32 `json:"size"`
}

// ToHost returns the host id of container id id, and false when id is outside
// the range.
func (r Range) ToHost(id uint32) (uint32, bool) {
	if id >= r.Size {
		return 0, false
	}
	return r.HostID + id, true
}

// ToContainer returns the container id of host id hostID, and false when
// hostID is outside the range.
func (r Range) ToContainer(hostID uint32) (uint32, bool) {
	if !r.Contains(hostID) {
		return 0, false
	}
	return hostID - r.HostID, true
}

// Contains reports whether host id hostID belongs to the range.
func (r Range) Contains(hostID uint32) bool {
	return hostID >= r.HostID && uint64(hostID) < r.end()
}

// Overlaps reports whether the two ranges share a host id.
func (r Range) Overlaps(o Range) bool {
	return uint64(r.HostID) < o.end() && uint64(o.HostID) < r.end()
}

// Last is the highest host id of the range. It is meaningless for an empty range.
func (r Range) Last() uint32 { return uint32(r.end() - 1) }

// end is one past the last host id, in 64 bits so that a range ending at
// 2^32-1 does not wrap.
func (r Range) end() uint64 { return uint64(r.HostID) + uint64(r.Size) }

// String is the inclusive host id interval, e.g. "524288-589823".
func (r Range) String() string {
	if r.Size == 0 {
		return fmt.Sprintf("%d-(empty)", r.HostID)
	}
	return fmt.Sprintf("%d-%d", r.HostID, r.Last())
}

// IDMap is the range as one id mapping, for SysProcAttr.UidMappings and
// GidMappings.
func (r Range) IDMap() []syscall.SysProcIDMap {
	return []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(r.HostID), Size: int(r.Size)}}
}

// MapLine is the range as a line of /proc/PID/uid_map or gid_map.
func (r Range) MapLine() string { return fmt.Sprintf("0 %d %d\n", r.HostID, r.Size) }
