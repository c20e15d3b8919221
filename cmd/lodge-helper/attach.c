// attach mode (_LODGE_ATTACH=1): mount host files over paths inside a running
// container. lodge's /proc views server uses it after a restart: the running
// containers' binds of the old server's files are dead (ENOTCONN), and the new
// server's files replace them without a restart of the container.
//
// Each source (a host path) is cloned into a detached mount (open_tree) while
// the helper is still in the host's mount namespace; then it joins the
// container's mount namespace (setns with init's pidfd), detaches whatever is
// mounted at each target, and moves the clone there (move_mount). Joining a
// mount namespace needs a single-threaded process, hence C.
//
// Inputs: _LODGE_ATTACH_PIDFD (pidfd of the container's init),
// _LODGE_ATTACH_MOUNTS: lines of "SOURCE\tTARGET".
#include "helper.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif

#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#endif

// struct mount_attr of mount_setattr(2), for libcs that lack it.
struct lodge_mount_attr {
	unsigned long long attr_set, attr_clr, propagation, userns_fd;
};

enum { MAX_MOUNTS = 32 };

void attach_mode(void)
{
	int pidfd = (int)env_num("_LODGE_ATTACH_PIDFD", -1, INT_MAX);
	char *list = getenv("_LODGE_ATTACH_MOUNTS");
	char *targets[MAX_MOUNTS];
	int trees[MAX_MOUNTS], n = 0, failed = 0;
	char *save = NULL, *line;

	if (pidfd < 0 || list == NULL)
		die_msg("attach: missing _LODGE_ATTACH_PIDFD or _LODGE_ATTACH_MOUNTS");
	fds_from(pidfd + 1, 0); // nothing else of the caller's enters the container's namespace
	list = xstrdup(list);
	for (line = strtok_r(list, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *tab = strchr(line, '\t');
		if (n == MAX_MOUNTS)
			die_msg("attach: more mounts than lodge attaches at once (32)");
		if (tab == NULL)
			die_msg("attach: a mount line lacks a tab");
		*tab = '\0';
		trees[n] = (int)syscall(SYS_open_tree, AT_FDCWD, line, OPEN_TREE_CLONE | O_CLOEXEC | AT_RECURSIVE);
		if (trees[n] < 0)
			die("attach: clone a source mount");
		// Read-only in the container, like the views bound at start.
		struct lodge_mount_attr ro = { .attr_set = MOUNT_ATTR_RDONLY };
		if (syscall(SYS_mount_setattr, trees[n], "", AT_EMPTY_PATH | AT_RECURSIVE, &ro, sizeof(ro)) < 0)
			die("attach: make a view read-only");
		targets[n++] = tab + 1;
	}
	if (setns(pidfd, CLONE_NEWNS) < 0)
		die("attach: enter the container's mount namespace");
	for (int i = 0; i < n; i++) {
		umount2(targets[i], MNT_DETACH); // the dead mount, if any
		if (syscall(SYS_move_mount, trees[i], "", AT_FDCWD, targets[i], MOVE_MOUNT_F_EMPTY_PATH) < 0) {
			fprintf(stderr, "lodge: attach %s: %s\n", targets[i], strerror(errno));
			failed = 1;
		}
	}
	_exit(failed ? EXIT_HELPER_FAILED : 0);
}
