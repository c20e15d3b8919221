// exec mode (_LODGE_NSEXEC=1): `lodge exec` - enter a running container and
// run a command. Go cannot setns(2) into a user or mount namespace once its
// runtime has started threads.
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
// Inputs (all removed from the environment before the command runs):
//   _LODGE_TASKS           newline-separated v1 "tasks" files to join
//   _LODGE_NSEXEC_PIDFD    pidfd of the container's init (inherited fd)
//   _LODGE_NSEXEC_NS       namespace flags for setns, decimal
//   _LODGE_NSEXEC_UID, _LODGE_NSEXEC_GID, _LODGE_NSEXEC_GROUPS (comma-separated)
//   _LODGE_NSEXEC_CWD      working directory inside the container
//   _LODGE_NSEXEC_CWD_SOFT set when the directory is only the user's home: if it
//                          does not exist, / is used (as login does)
//   _LODGE_NSEXEC_PTY      unix socket fd: allocate a pty in the container and send its master here
//   _LODGE_NSEXEC_DROP_CAPS capabilities to drop from the bounding set, comma-separated numbers
#include "helper.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif

// drop_capabilities removes from the bounding set the capabilities lodge keeps
// away from containers ($_LODGE_NSEXEC_DROP_CAPS, comma-separated numbers; see
// manager/monitor/caps.go), as it does for init.
static void drop_capabilities(void)
{
	const char *list = getenv("_LODGE_NSEXEC_DROP_CAPS");
	char *copy, *save = NULL, *tok;

	if (list == NULL || *list == '\0')
		return;
	copy = strdup(list);
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (prctl(PR_CAPBSET_DROP, strtoul(tok, NULL, 10), 0, 0, 0) < 0)
			die("drop a capability");
	}
	free(copy);
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
		die("exec: setgroups");
	if (setresgid(gid, gid, gid) < 0)
		die("setresgid (is the group mapped in the container?)");
	if (setresuid(uid, uid, uid) < 0)
		die("setresuid (is the user mapped in the container?)");
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
	drop_capabilities();
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

void exec_mode(int argc, char **argv)
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

