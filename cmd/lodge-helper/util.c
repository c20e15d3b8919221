// Shared by the modes: errors, the environment, cgroups, descriptor passing.
#include "helper.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

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

// env_num returns the environment variable name, a whole decimal number from
// 0 to max, or fallback when it is unset or empty; anything else is fatal (a
// uid of "-1" must not become "unchanged", nor a pid wrap around).
long env_num(const char *name, long fallback, long max)
{
	const char *s = getenv(name);

	if (s == NULL || *s == '\0')
		return fallback;
	return (long)parse_ulong(s, (unsigned long)max, name);
}

// xstrdup is strdup that dies rather than return NULL.
char *xstrdup(const char *s)
{
	char *copy = strdup(s);

	if (copy == NULL)
		die("out of memory");
	return copy;
}

// parse_ulong parses a whole decimal number up to max, or dies naming what it
// was: a list entry that is not a number must not turn into 0 (root's id).
unsigned long parse_ulong(const char *s, unsigned long max, const char *what)
{
	char *end = NULL;
	unsigned long v = 0;

	errno = 0;
	if (*s >= '0' && *s <= '9') // strtoul would take a sign or spaces
		v = strtoul(s, &end, 10);
	if (end == NULL || errno != 0 || *end != '\0' || v > max) {
		fprintf(stderr, "lodge: malformed %s: %s\n", what, s);
		_exit(EXIT_HELPER_FAILED);
	}
	return v;
}

// write_all writes the whole buffer to a blocking descriptor, across partial
// writes and signals; -1 (errno set) on an error.
int write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;

	while (n > 0) {
		ssize_t k = write(fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

void clear_env(void)
{
	static const char *names[] = { "_LODGE_NSEXEC", "_LODGE_INITSTUB", "_LODGE_WATCH", "_LODGE_TASKS",
				       "_LODGE_SUPERVISE", "_LODGE_ATTACH", "_LODGE_ATTACH_PIDFD", "_LODGE_ATTACH_MOUNTS",
				       "_LODGE_NSEXEC_PIDFD", "_LODGE_NSEXEC_NS", "_LODGE_NSEXEC_UID",
				       "_LODGE_NSEXEC_GID", "_LODGE_NSEXEC_GROUPS", "_LODGE_NSEXEC_CWD",
				       "_LODGE_NSEXEC_CWD_SOFT", "_LODGE_NSEXEC_PTY", "_LODGE_NSEXEC_DROP_CAPS",
				       "_LODGE_NSEXEC_SECCOMP" };
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
	list = xstrdup(list);
	for (path = strtok_r(list, "\n", &save); path; path = strtok_r(NULL, "\n", &save)) {
		int fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write_all(fd, "0", 1) < 0) {
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


// fds_from applies to every descriptor from first up: close-on-exec with
// cloexec set, else closed. Whatever the caller of lodge left open must not
// cross into a container (see internal/fds in Go); descriptors handed over on
// purpose are below first, or are made inheritable again afterwards.
void fds_from(int first, int cloexec)
{
	DIR *dir;
	struct dirent *e;

	if (syscall(SYS_close_range, (unsigned)first, ~0U, cloexec ? CLOSE_RANGE_CLOEXEC : 0U) == 0)
		return;
	dir = opendir("/proc/self/fd"); // kernels before 5.11
	if (dir == NULL)
		die("list open descriptors");
	while ((e = readdir(dir)) != NULL) {
		int fd = atoi(e->d_name);
		if (fd < first || fd == dirfd(dir) || e->d_name[0] == '.')
			continue;
		if (cloexec)
			fcntl(fd, F_SETFD, FD_CLOEXEC);
		else
			close(fd);
	}
	closedir(dir);
}
