// Package lxcfs will hold the FUSE server that renders per-container views of
// /proc and /sys (meminfo, cpuinfo, stat, uptime, loadavg, swaps, diskstats and
// /sys/devices/system/cpu) from each container's own root cgroup.
package lxcfs
