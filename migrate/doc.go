// Package migrate will hold checkpoint/restore through CRIU (go-criu) and the
// host-to-host live-migration protocol. The runtime core is built so that it fits:
// each container has its own time namespace, its /dev/console is a pty whose master
// lives outside the container (declared external on dump), and no FUSE or host
// bind mounts are needed for the container to run.
package migrate
