// nsexec: enter a running container's namespaces and run a command there.
//
// Go cannot setns(2) into a user or mount namespace once the runtime has started
// threads, so this runs as a C constructor of the lodge-nsexec helper, before
// its Go runtime, when the environment carries _LODGE_NSEXEC=1. It never
// returns to Go: it ends with _exit in both the parent and the child.
//
//   lodge exec (Go)            nsexec parent (C)               command (C, then execve)
//        | fork+exec ------------> join init's cgroups
//        |                         setns(pidfd, all namespaces)
//        |                         set uid/gid/groups
//        | <-- pty master (SCM) -- [pty: open /dev/pts/ptmx of the container]
//        |                         fork ----------------------> setsid, ctty, chdir
//        |                          |                           execvp(argv[1], ...)
//        | <---- exit status ---- waitpid ---------------------- exits
//
// Inputs (all removed from the environment before the command runs):
//   _LODGE_NSEXEC_PIDFD    pidfd of the container's init (inherited fd)
//   _LODGE_NSEXEC_NS       namespace flags for setns, decimal
//   _LODGE_NSEXEC_CGROUPS  newline-separated host paths of cgroup.procs files to join
//   _LODGE_NSEXEC_UID, _LODGE_NSEXEC_GID, _LODGE_NSEXEC_GROUPS (comma-separated)
//   _LODGE_NSEXEC_CWD      working directory inside the container
//   _LODGE_NSEXEC_CWD_SOFT set when the directory is only the user's home: if it
//                          does not exist, / is used (as login does)
//   _LODGE_NSEXEC_PTY      unix socket fd: allocate a pty in the container and send its master here
// argv[1..] is the command. Exit status: the command's, 128+N if it died of signal N,
// 125 when nsexec itself failed, 126 when the command cannot run, 127 when not found.
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

// join_cgroups moves this process into each listed cgroup.procs file ("0" means
// the writer), so the command is accounted and limited like the container.
static void join_cgroups(void)
{
	char *list = getenv("_LODGE_NSEXEC_CGROUPS");
	char *save = NULL, *path;

	if (list == NULL)
		return;
	list = strdup(list);
	for (path = strtok_r(list, "\n", &save); path; path = strtok_r(NULL, "\n", &save)) {
		int fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, "0", 1) != 1) {
			fprintf(stderr, "lodge exec: join cgroup %s: %s\n", path, strerror(errno));
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

static void clear_nsexec_env(void)
{
	static const char *names[] = { "_LODGE_NSEXEC", "_LODGE_NSEXEC_PIDFD", "_LODGE_NSEXEC_NS",
				       "_LODGE_NSEXEC_CGROUPS", "_LODGE_NSEXEC_UID", "_LODGE_NSEXEC_GID",
				       "_LODGE_NSEXEC_GROUPS", "_LODGE_NSEXEC_CWD", "_LODGE_NSEXEC_CWD_SOFT",
				       "_LODGE_NSEXEC_PTY" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		unsetenv(names[i]);
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
	clear_nsexec_env();
	execvp(argv[0], argv);
	fprintf(stderr, "lodge exec: %s: %s\n", argv[0], strerror(errno));
	_exit(errno == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_RUN);
}

static pid_t command_pid;

static void forward_signal(int sig)
{
	if (command_pid > 0)
		kill(command_pid, sig);
}

static int wait_status(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			die("wait for command");
	}
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

static void nsexec(int argc, char **argv)
{
	int pidfd = (int)env_long("_LODGE_NSEXEC_PIDFD", -1);
	int nsflags = (int)env_long("_LODGE_NSEXEC_NS", 0);
	int ptysock = (int)env_long("_LODGE_NSEXEC_PTY", -1);
	int slave = -1;
	struct sigaction sa = { .sa_handler = forward_signal };

	if (argc < 2)
		die_msg("no command given");
	if (pidfd < 0)
		die_msg("no container process given");
	fcntl(pidfd, F_SETFD, FD_CLOEXEC);
	if (ptysock >= 0)
		fcntl(ptysock, F_SETFD, FD_CLOEXEC);

	join_cgroups();
	if (setns(pidfd, nsflags) < 0)
		die("enter the container's namespaces");
	close(pidfd);
	set_credentials();
	if (ptysock >= 0)
		slave = open_container_pty(ptysock);

	// Ctrl-C from a terminal reaches the command directly (same process group);
	// the waiting parent must outlive it to report its status.
	signal(SIGINT, SIG_IGN);
	signal(SIGQUIT, SIG_IGN);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);

	command_pid = fork();
	if (command_pid < 0)
		die("fork");
	if (command_pid == 0)
		run_command(argv + 1, slave);
	if (slave >= 0)
		close(slave);
	_exit(wait_status(command_pid));
}

// lodge_nsexec_init runs before the Go runtime. It returns at once (costing one
// getenv) unless this process was started by lodge exec to enter a container.
__attribute__((constructor)) static void lodge_nsexec_init(int argc, char **argv, char **envp)
{
	(void)envp;
	if (getenv("_LODGE_NSEXEC") == NULL)
		return;
	nsexec(argc, argv);
}
