// supervise mode (_LODGE_SUPERVISE=1): keep a server running. argv[1..] is
// the command (an absolute path first); it is started again, after a short
// pause that grows while it keeps failing, whenever it dies other than by
// exiting 0. SIGTERM and SIGINT are passed on, then the supervisor exits with
// the server. lodge uses it for its /proc views server (lodge lxcfs): if that
// is killed, a new one mounts afresh and re-attaches the views of running
// containers within a fraction of a second. A small C loop, because it lives
// as long as the host's containers do.
#include "helper.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

// EXIT_RESTART is the server's exit status for "start me again now"
// (lxcfs.RestartExitCode: SIGHUP, lodge lxcfs restart).
enum { EXIT_RESTART = 75 };

// Both are read by the signal handler. SIGTERM and SIGINT are blocked from
// before each fork until server holds the new pid, so a stop that arrives
// meanwhile is delivered then and reaches the server.
static volatile sig_atomic_t stopping;
static volatile sig_atomic_t server;

static void on_stop(int sig)
{
	stopping = 1;
	if (server > 0)
		kill((pid_t)server, sig);
}

// start forks and executes the server; the stop signals are blocked (see above).
static void start(char **argv, const sigset_t *unblocked)
{
	pid_t pid = fork();

	if (pid < 0)
		die("supervise: fork");
	if (pid == 0) {
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		sigprocmask(SIG_SETMASK, unblocked, NULL);
		execv(argv[0], argv);
		fprintf(stderr, "lodge supervisor: execute %s: %s\n", argv[0], strerror(errno));
		_exit(EXIT_HELPER_FAILED);
	}
	server = pid;
}

// wait_server waits for the server to exit and returns its status.
static int wait_server(void)
{
	int status = 0;

	while (waitpid((pid_t)server, &status, 0) < 0) {
		if (errno != EINTR)
			die("supervise: wait for the server");
	}
	server = 0;
	return status;
}

void supervise_mode(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_stop };
	sigset_t stops, unblocked;
	unsigned pause_ms = 100;

	if (argc < 2)
		die_msg("supervise: no command");
	fds_from(3, 0); // the server gets its stdin, stdout and stderr only
	clear_env();
	if (setenv("LODGE_LXCFS_SUPERVISED", "1", 1) < 0)
		die("supervise: set the environment");
	sigemptyset(&stops);
	sigaddset(&stops, SIGTERM);
	sigaddset(&stops, SIGINT);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	for (;;) {
		time_t began = time(NULL);
		int status;

		sigprocmask(SIG_BLOCK, &stops, &unblocked);
		if (stopping)
			_exit(0); // asked to stop while no server ran
		start(argv + 1, &unblocked);
		sigprocmask(SIG_SETMASK, &unblocked, NULL);
		status = wait_server();
		if (stopping || (WIFEXITED(status) && WEXITSTATUS(status) == 0))
			_exit(0);
		if (WIFEXITED(status) && WEXITSTATUS(status) == EXIT_RESTART) {
			fprintf(stderr, "lodge supervisor: %s asked for a restart\n", argv[1]);
			continue;
		}
		fprintf(stderr, "lodge supervisor: %s died (status %#x); restarting it\n", argv[1], status);
		if (time(NULL) - began >= 2)
			pause_ms = 100; // it had come up: a fresh failure, restart at once
		usleep(pause_ms * 1000);
		if (pause_ms < 5000)
			pause_ms *= 2;
	}
}
