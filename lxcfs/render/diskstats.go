package render

import (
	"fmt"
	"strconv"
	"strings"

	"lodge/lxcfs/cgstats"
)

// Diskstats renders /proc/diskstats from the container's own I/O: one line
// per host device it did I/O on (named as the host names it), requests and
// sectors from its cgroup, the kernel's timing fields 0 because no cgroup
// accounts them. A container without I/O accounting gets an empty file,
// never the host's numbers.
func Diskstats(host string, io []cgstats.DeviceIO) string {
	names := map[[2]uint32]string{}
	for _, line := range strings.Split(host, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		maj, err1 := strconv.ParseUint(f[0], 10, 32)
		min, err2 := strconv.ParseUint(f[1], 10, 32)
		if err1 == nil && err2 == nil {
			names[[2]uint32{uint32(maj), uint32(min)}] = f[2]
		}
	}
	var sb strings.Builder
	for _, d := range io {
		name, ok := names[[2]uint32{d.Major, d.Minor}]
		if !ok || d.Reads+d.Writes == 0 {
			continue
		}
		fmt.Fprintf(&sb, "%4d %7d %s %d 0 %d 0 %d 0 %d 0 0 0 0 0 0 0 0 0 0\n",
			d.Major, d.Minor, name, d.Reads, d.ReadBytes/512, d.Writes, d.WriteBytes/512)
	}
	return sb.String()
}
