// exec mode (_LODGE_NSEXEC=1): `lodge exec` - enter a running container and
// run a command. Go cannot setns(2) into a user or mount namespace once its
// runtime has started threads.
//
//   lodge exec (Go)                     helper (C)                       command
//        | clone3(CLONE_INTO_CGROUP) --> join v1 cgroups
//        |   + exec                      setns(pidfd, all namespaces)
//        |                               new session keyring, drop capabilities,
//        |                               seccomp filter
//        |                               set groups, gid, uid
//        | <-- pty master over a socket - [with a pty: open the container's ptmx]
//        |                               fork ---------------------------> setsid, [ctty], chdir
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
//   _LODGE_NSEXEC_PTY_ROWS, _LODGE_NSEXEC_PTY_COLS  the pty's size, set before the command runs
//   _LODGE_NSEXEC_DROP_CAPS capabilities to drop from the bounding set, comma-separated numbers
//   _LODGE_NSEXEC_SECCOMP  the seccomp filter, hex of a struct sock_filter array
//                          (internal/seccomp); required
//
// The command inherits only its stdin, stdout and stderr (or the pty): every
// other descriptor is close-on-exec. It runs in a session of its own, pty or
// not, so it has no controlling terminal of the host's (no TIOCSTI into the
// caller's terminal) and CRIU can checkpoint it.
#include "helper.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif

// drop_capabilities removes from the bounding set the capabilities lodge keeps
// away from containers ($_LODGE_NSEXEC_DROP_CAPS, comma-separated numbers; see
// internal/isolation/caps.go), as it does for init.
static void drop_capabilities(void)
{
	const char *list = getenv("_LODGE_NSEXEC_DROP_CAPS");
	char *copy, *save = NULL, *tok;

	if (list == NULL || *list == '\0')
		return;
	copy = xstrdup(list);
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (prctl(PR_CAPBSET_DROP, parse_ulong(tok, 63, "capability in $_LODGE_NSEXEC_DROP_CAPS"), 0, 0, 0) < 0)
			die("drop a capability");
	}
	free(copy);
}

// join_session_keyring gives the command a new anonymous session keyring:
// keyrings are not namespaced, and the caller's (the operator's) must not be
// reachable from the container. ENOSYS: no keyrings (or a nested lodge whose
// outer filter denies keyctl), nothing to share.
static void join_session_keyring(void)
{
	if (syscall(SYS_keyctl, 1 /* KEYCTL_JOIN_SESSION_KEYRING */, (char *)NULL) < 0 && errno != ENOSYS)
		die("join a new session keyring");
}

// struct sock_filter and struct sock_fprog of <linux/filter.h>, which musl's
// headers lack.
struct lodge_sock_filter {
	unsigned short code;
	unsigned char jt, jf;
	unsigned int k;
};
struct lodge_sock_fprog {
	unsigned short len;
	struct lodge_sock_filter *filter;
};

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

// load_seccomp installs the container's filter ($_LODGE_NSEXEC_SECCOMP). It
// needs CAP_SYS_ADMIN in the container's user namespace instead of
// no_new_privs, so it runs before the switch to the command's user, and
// setuid programs (sudo) keep working inside.
static void load_seccomp(void)
{
	const char *hex = getenv("_LODGE_NSEXEC_SECCOMP");
	size_t n = hex ? strlen(hex) : 0, insns = n / (2 * sizeof(struct lodge_sock_filter));
	unsigned char *buf;
	struct lodge_sock_fprog prog;

	if (n == 0 || n % (2 * sizeof(struct lodge_sock_filter)) != 0 || insns > 4096)
		die_msg("exec: no valid seccomp filter given ($_LODGE_NSEXEC_SECCOMP)");
	buf = malloc(n / 2);
	if (buf == NULL)
		die("exec: allocate the seccomp filter");
	for (size_t i = 0; i < n / 2; i++) {
		int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			die_msg("exec: malformed seccomp filter");
		buf[i] = (unsigned char)(hi << 4 | lo);
	}
	prog.len = (unsigned short)insns;
	prog.filter = (struct lodge_sock_filter *)buf;
	if (syscall(SYS_seccomp, 1 /* SECCOMP_SET_MODE_FILTER */, 0, &prog) < 0)
		die("exec: load the seccomp filter");
	free(buf);
}

// MAX_GROUPS is the most supplementary groups a command gets; a longer list
// is refused, not cut short (NGROUPS_MAX is 65536, lodge passes a user's
// groups from the container's /etc/group).
enum { MAX_GROUPS = 1024 };

static void set_credentials(void)
{
	uid_t uid = (uid_t)env_num("_LODGE_NSEXEC_UID", 0, 0xfffffffeL);
	gid_t gid = (gid_t)env_num("_LODGE_NSEXEC_GID", 0, 0xfffffffeL);
	const char *list = getenv("_LODGE_NSEXEC_GROUPS");
	static gid_t groups[MAX_GROUPS];
	size_t n = 0;

	if (list != NULL && *list != '\0') {
		char *copy = xstrdup(list), *save = NULL, *tok;
		for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
			if (n == MAX_GROUPS)
				die_msg("exec: more supplementary groups than lodge passes on (1024)");
			groups[n++] = (gid_t)parse_ulong(tok, 0xfffffffeUL, "group in $_LODGE_NSEXEC_GROUPS");
		}
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
	// The size, before the command can ask for it (lodge exec sets it only
	// once it has the master, and the command may be quicker).
	struct winsize ws = {
		.ws_row = (unsigned short)env_num("_LODGE_NSEXEC_PTY_ROWS", 0, USHRT_MAX),
		.ws_col = (unsigned short)env_num("_LODGE_NSEXEC_PTY_COLS", 0, USHRT_MAX),
	};
	unsetenv("_LODGE_NSEXEC_PTY_ROWS"); // not in clear_env's list: they are this mode's alone
	unsetenv("_LODGE_NSEXEC_PTY_COLS");
	if (ws.ws_row > 0 && ws.ws_col > 0 && ioctl(master, TIOCSWINSZ, &ws) < 0)
		die("set the pty's size");
	send_fd(sock, master);
	close(master);
	close(sock);
	return slave;
}

static void run_command(char **argv, int slave, const sigset_t *unblocked)
{
	const char *cwd = getenv("_LODGE_NSEXEC_CWD");

	if (setsid() < 0)
		die("exec: new session");
	if (slave >= 0) {
		if (ioctl(slave, TIOCSCTTY, 0) < 0)
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
	sigprocmask(SIG_SETMASK, unblocked, NULL);
	clear_env();
	execvp(argv[0], argv);
	fprintf(stderr, "lodge exec: %s: %s\n", argv[0], strerror(errno));
	_exit(errno == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_RUN);
}

static volatile sig_atomic_t child_pid; // read by the signal handler

static void forward_signal(int sig)
{
	if (child_pid > 0)
		kill((pid_t)child_pid, sig);
}

static const int relayed[] = { SIGINT, SIGQUIT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2 };

// block_relayed blocks the relayed signals from before the fork until the
// child's pid is stored and the handlers are in place (wait_child): one that
// arrives meanwhile is then delivered and relayed, not lost or fatal.
static void block_relayed(sigset_t *old)
{
	sigset_t set;

	sigemptyset(&set);
	for (size_t i = 0; i < sizeof(relayed) / sizeof(relayed[0]); i++)
		sigaddset(&set, relayed[i]);
	sigprocmask(SIG_BLOCK, &set, old);
}

// wait_child relays SIGTERM, SIGHUP, SIGUSR1 and SIGUSR2 to the child and
// exits with its status. It relays SIGINT and SIGQUIT too: the command is in
// a session of its own, so Ctrl-C and Ctrl-\ on the caller's terminal reach
// only lodge (which ignores them, to report the command's status) and this
// process, in the caller's process group. With a pty the terminal is raw and
// they arrive as bytes on the pty instead.
static void wait_child(pid_t pid, const sigset_t *unblocked)
{
	struct sigaction sa = { .sa_handler = forward_signal };
	int status = 0;

	child_pid = pid;
	for (size_t i = 0; i < sizeof(relayed) / sizeof(relayed[0]); i++)
		sigaction(relayed[i], &sa, NULL);
	sigprocmask(SIG_SETMASK, unblocked, NULL);
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
	int pidfd = (int)env_num("_LODGE_NSEXEC_PIDFD", -1, INT_MAX);
	int ptysock = (int)env_num("_LODGE_NSEXEC_PTY", -1, INT_MAX);
	int slave = -1;
	sigset_t unblocked;
	pid_t pid;

	if (setns(pidfd, (int)env_num("_LODGE_NSEXEC_NS", 0, INT_MAX)) < 0)
		die("enter the container's namespaces");
	close(pidfd);
	join_session_keyring(); // before the filter, which denies keyctl
	drop_capabilities();
	load_seccomp();
	set_credentials();
	if (ptysock >= 0)
		slave = open_container_pty(ptysock);
	block_relayed(&unblocked);
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0)
		run_command(argv, slave, &unblocked);
	if (slave >= 0)
		close(slave);
	wait_child(pid, &unblocked);
}

void exec_mode(int argc, char **argv)
{
	int pidfd = (int)env_num("_LODGE_NSEXEC_PIDFD", -1, INT_MAX);

	if (argc < 2)
		die_msg("no command given");
	if (pidfd < 0)
		die_msg("no container process given");
	fds_from(3, 1); // the pidfd and the pty socket are ours, not the command's
	join_v1_cgroups();
	enter(argv + 1);
}

