// initstub mode (_LODGE_INITSTUB=FD): a process that must start in v1
// cgroups of its own, already in its cgroup2 cgroup (clone3
// CLONE_INTO_CGROUP): the container's first process, started by the monitor
// in new namespaces, and the monitor itself, started by lodge in
// BASE/.monitor/NAME. It joins the v1 cgroups named in the environment and
// then executes lodge-monitor open at FD, argv unchanged ("__init", which
// builds the container, or "__monitor").
//
// Joining cgroups: writing a pid to cgroup.procs takes the kernel's global
// threadgroup lock for writing and waits for an RCU grace period (7-13 ms on the
// test VM). A single-threaded process writing "0" to a v1 "tasks" file moves
// only its own thread and skips that lock; lodge exec relies on the same.
#include "helper.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

// initstub joins the v1 cgroups and executes the binary open at exe.
void initstub_mode(char **argv)
{
	int exe = (int)env_num("_LODGE_INITSTUB", -1, INT_MAX);

	if (exe < 4) // 0-2 are stdio, 3 the sync socket
		die_msg("initstub: $_LODGE_INITSTUB must name lodge-monitor's descriptor");
	// The program gets descriptor 3 (the first process's sync socket, the
	// monitor's status pipe) and nothing else; exe is executed, not inherited.
	fds_from(4, 1);
	if (fcntl(exe, F_SETFD, FD_CLOEXEC) < 0)
		die("initstub: lodge-monitor's descriptor");
	join_v1_cgroups();
	clear_env();
	fexecve(exe, argv, environ);
	fprintf(stderr, "lodge: execute lodge-monitor %s: %s\n",
		argv[0] != NULL && argv[1] != NULL ? argv[1] : "", strerror(errno));
	_exit(EXIT_HELPER_FAILED);
}

