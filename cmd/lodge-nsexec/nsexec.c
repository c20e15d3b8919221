// lodge-nsexec, the C half of lodge: work that must happen in a
// single-threaded process, which a Go program never is once its runtime has
// started. It is a small static C program (built with musl where available:
// its start-up costs a fraction of glibc's CPU-feature probing, which is slow
// under virtualization) that lodge installs next to itself. Two modes, chosen
// by the environment:
//
// _LODGE_NSEXEC=1: `lodge exec` - enter a running container and run a command.
// Go cannot setns(2) into a user or mount namespace once its runtime has
// started threads.
//
//   lodge exec (Go)                     helper (C)                       command
//        | clone3(CLONE_INTO_CGROUP) --> join v1 cgroups
//        |   + exec                      setns(pidfd, all namespaces)
//        |                               set groups, gid, uid
//        | <-- pty master over a socket - [with a pty: open the container's ptmx]
//        |                               fork ---------------------------> setsid, ctty, chdir
//        |                                |                                execvp(argv[1], ...)
//        | <-------- exit status ------- waitpid <------------------------ exits
//
// lodge exec creates the helper directly in the container's cgroup2 cgroup; the
// command is a child because joining a pid namespace only affects children.
// Exit status: the command's, 128+N if it died of signal N, 125 when the helper
// itself failed, 126 when the command cannot run, 127 when not found.
//
// _LODGE_INITSTUB=FD: the container's first process, started by the monitor in
// new namespaces. It joins the container's v1 cgroups, then executes the lodge
// binary open at FD (argv unchanged: "__init"), which sets up the container.
//
// Joining cgroups: writing a pid to cgroup.procs takes the kernel's global
// threadgroup lock for writing and waits for an RCU grace period (7-13 ms here).
// A single-threaded process writing "0" to a v1 "tasks" file moves only its own
// thread and skips that lock; cgroup2 is entered at clone time instead. Both
// modes rely on this, which is why they run before any thread exists.
//
// Inputs (all removed from the environment before the command runs):
//   _LODGE_TASKS           newline-separated v1 "tasks" files to join
//   _LODGE_NSEXEC_PIDFD    pidfd of the container's init (inherited fd)
//   _LODGE_NSEXEC_NS       namespace flags for setns, decimal
//   _LODGE_NSEXEC_UID, _LODGE_NSEXEC_GID, _LODGE_NSEXEC_GROUPS (comma-separated)
//   _LODGE_NSEXEC_CWD      working directory inside the container
//   _LODGE_NSEXEC_CWD_SOFT set when the directory is only the user's home: if it
//                          does not exist, / is used (as login does)
//   _LODGE_NSEXEC_PTY      unix socket fd: allocate a pty in the container and send its master here
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif

enum { EXIT_NSEXEC_FAILED = 125, EXIT_CANNOT_RUN = 126, EXIT_NOT_FOUND = 127 };

extern char **environ;

static void die(const char *step)
{
	fprintf(stderr, "lodge exec: %s: %s\n", step, strerror(errno));
	_exit(EXIT_NSEXEC_FAILED);
}

static void die_msg(const char *msg)
{
	fprintf(stderr, "lodge exec: %s\n", msg);
	_exit(EXIT_NSEXEC_FAILED);
}

static long env_long(const char *name, long fallback)
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

static void clear_env(void)
{
	static const char *names[] = { "_LODGE_NSEXEC", "_LODGE_INITSTUB", "_LODGE_TASKS",
				       "_LODGE_NSEXEC_PIDFD", "_LODGE_NSEXEC_NS", "_LODGE_NSEXEC_UID",
				       "_LODGE_NSEXEC_GID", "_LODGE_NSEXEC_GROUPS", "_LODGE_NSEXEC_CWD",
				       "_LODGE_NSEXEC_CWD_SOFT", "_LODGE_NSEXEC_PTY" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		unsetenv(names[i]);
}

// join_v1_cgroups writes "0" to each listed v1 tasks file: the calling thread,
// which is the whole process as long as it is single-threaded, moves there.
static void join_v1_cgroups(void)
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
			_exit(EXIT_NSEXEC_FAILED);
		}
		close(fd);
	}
	free(list);
}

static void set_credentials(void)
{
	uid_t uid = (uid_t)env_long("_LODGE_NSEXEC_UID", 0);
	gid_t gid = (gid_t)env_long("_LODGE_NSEXEC_GID", 0);
	const char *list = getenv("_LODGE_NSEXEC_GROUPS");
	gid_t groups[256];
	size_t n = 0;

	if (list != NULL && *list != '\0') {
		char *copy = strdup(list), *save = NULL, *tok;
		for (tok = strtok_r(copy, ",", &save); tok && n < 256; tok = strtok_r(NULL, ",", &save))
			groups[n++] = (gid_t)strtoul(tok, NULL, 10);
		free(copy);
	}
	if (setgroups(n, groups) < 0)
		die("setgroups");
	if (setresgid(gid, gid, gid) < 0)
		die("setresgid (is the group mapped in the container?)");
	if (setresuid(uid, uid, uid) < 0)
		die("setresuid (is the user mapped in the container?)");
}

static void send_fd(int sock, int fd)
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
		die("send pty master");
}

// open_container_pty allocates a pty from the container's own devpts instance,
// so the command's terminal belongs to the container (tty, sudo and login work),
// hands the master to lodge exec and returns the slave.
static int open_container_pty(int sock)
{
	int master = open("/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	int unlock = 0, slave;

	if (master < 0)
		die("open /dev/pts/ptmx in the container");
	if (ioctl(master, TIOCSPTLCK, &unlock) < 0)
		die("unlock pty");
	slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY);
	if (slave < 0)
		die("open pty peer");
	send_fd(sock, master);
	close(master);
	close(sock);
	return slave;
}

static void run_command(char **argv, int slave)
{
	const char *cwd = getenv("_LODGE_NSEXEC_CWD");

	if (slave >= 0) {
		if (setsid() < 0 || ioctl(slave, TIOCSCTTY, 0) < 0)
			die("make the pty the controlling terminal");
		if (dup2(slave, 0) < 0 || dup2(slave, 1) < 0 || dup2(slave, 2) < 0)
			die("dup pty");
		if (slave > 2)
			close(slave);
	}
	if (cwd != NULL && *cwd != '\0' && chdir(cwd) < 0) {
		if (getenv("_LODGE_NSEXEC_CWD_SOFT") == NULL || chdir("/") < 0) {
			fprintf(stderr, "lodge exec: cannot change to directory %s: %s\n", cwd, strerror(errno));
			_exit(EXIT_CANNOT_RUN);
		}
	}
	signal(SIGINT, SIG_DFL);
	signal(SIGQUIT, SIG_DFL);
	clear_env();
	execvp(argv[0], argv);
	fprintf(stderr, "lodge exec: %s: %s\n", argv[0], strerror(errno));
	_exit(errno == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_RUN);
}

static pid_t child_pid;

static void forward_signal(int sig)
{
	if (child_pid > 0)
		kill(child_pid, sig);
}

// wait_child relays SIGTERM, SIGHUP, SIGUSR1 and SIGUSR2 to the child and
// exits with its status. SIGINT and SIGQUIT from a terminal reach the command
// directly (same process group): the waiting processes ignore them, to live on
// and report the command's status.
static void wait_child(pid_t pid)
{
	struct sigaction sa = { .sa_handler = forward_signal };
	int status;

	child_pid = pid;
	signal(SIGINT, SIG_IGN);
	signal(SIGQUIT, SIG_IGN);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			die("wait for command");
	}
	if (WIFEXITED(status))
		_exit(WEXITSTATUS(status));
	_exit(128 + WTERMSIG(status));
}

// enter joins the container's namespaces and runs the command in its pid
// namespace (a child, since setns of a pid namespace only affects children).
static void enter(char **argv)
{
	int pidfd = (int)env_long("_LODGE_NSEXEC_PIDFD", -1);
	int ptysock = (int)env_long("_LODGE_NSEXEC_PTY", -1);
	int slave = -1;
	pid_t pid;

	if (setns(pidfd, (int)env_long("_LODGE_NSEXEC_NS", 0)) < 0)
		die("enter the container's namespaces");
	close(pidfd);
	set_credentials();
	if (ptysock >= 0)
		slave = open_container_pty(ptysock);
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0)
		run_command(argv, slave);
	if (slave >= 0)
		close(slave);
	wait_child(pid);
}

static void nsexec(int argc, char **argv)
{
	int pidfd = (int)env_long("_LODGE_NSEXEC_PIDFD", -1);
	int ptysock = (int)env_long("_LODGE_NSEXEC_PTY", -1);

	if (argc < 2)
		die_msg("no command given");
	if (pidfd < 0)
		die_msg("no container process given");
	fcntl(pidfd, F_SETFD, FD_CLOEXEC);
	if (ptysock >= 0)
		fcntl(ptysock, F_SETFD, FD_CLOEXEC);
	join_v1_cgroups();
	enter(argv + 1);
}

// initstub joins the v1 cgroups and executes the lodge binary open at exe.
static void initstub(char **argv)
{
	int exe = (int)env_long("_LODGE_INITSTUB", -1);

	join_v1_cgroups();
	fcntl(exe, F_SETFD, FD_CLOEXEC);
	clear_env();
	fexecve(exe, argv, environ);
	fprintf(stderr, "lodge: execute lodge __init: %s\n", strerror(errno));
	_exit(EXIT_NSEXEC_FAILED);
}

int main(int argc, char **argv)
{
	if (getenv("_LODGE_INITSTUB") != NULL)
		initstub(argv);
	if (getenv("_LODGE_NSEXEC") != NULL)
		nsexec(argc, argv);
	fputs("lodge-nsexec is started by lodge; use lodge exec instead\n", stderr);
	return EXIT_NSEXEC_FAILED;
}
