// Shared by the modes: errors, the environment, cgroups, descriptor passing.
#include "helper.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

void die(const char *step)
{
	fprintf(stderr, "lodge: %s: %s\n", step, strerror(errno));
	_exit(EXIT_HELPER_FAILED);
}

void die_msg(const char *msg)
{
	fprintf(stderr, "lodge: %s\n", msg);
	_exit(EXIT_HELPER_FAILED);
}

long env_long(const char *name, long fallback)
{
	const char *s = getenv(name);
	char *end;
	long v;

	if (s == NULL || *s == '\0')
		return fallback;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0')
		die_msg("malformed numeric environment variable");
	return v;
}

void clear_env(void)
{
	static const char *names[] = { "_LODGE_NSEXEC", "_LODGE_INITSTUB", "_LODGE_WATCH", "_LODGE_TASKS",
				       "_LODGE_SUPERVISE", "_LODGE_ATTACH", "_LODGE_ATTACH_PIDFD", "_LODGE_ATTACH_MOUNTS",
				       "_LODGE_NSEXEC_PIDFD", "_LODGE_NSEXEC_NS", "_LODGE_NSEXEC_UID",
				       "_LODGE_NSEXEC_GID", "_LODGE_NSEXEC_GROUPS", "_LODGE_NSEXEC_CWD",
				       "_LODGE_NSEXEC_CWD_SOFT", "_LODGE_NSEXEC_PTY", "_LODGE_NSEXEC_DROP_CAPS" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		unsetenv(names[i]);
}

// join_v1_cgroups writes "0" to each listed v1 tasks file: the calling thread,
// which is the whole process as long as it is single-threaded, moves there.
void join_v1_cgroups(void)
{
	char *list = getenv("_LODGE_TASKS");
	char *save = NULL, *path;

	if (list == NULL || *list == '\0')
		return;
	list = strdup(list);
	for (path = strtok_r(list, "\n", &save); path; path = strtok_r(NULL, "\n", &save)) {
		int fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, "0", 1) != 1) {
			fprintf(stderr, "lodge: join cgroup %s: %s\n", path, strerror(errno));
			_exit(EXIT_HELPER_FAILED);
		}
		close(fd);
	}
	free(list);
}

void send_fd(int sock, int fd)
{
	char byte = 'M';
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	if (sendmsg(sock, &msg, 0) < 0)
		die("send a descriptor");
}

