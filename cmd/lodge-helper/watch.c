// watch mode (_LODGE_WATCH=1): the monitor while the container runs and nobody
// asks anything hard of it. Once a container has booted, the Go monitor
// executes this in place (same process, so it stays the parent of init): a Go
// runtime costs about a megabyte per container just to wait, this loop a few
// dozen kilobytes. It does the idle work:
//
//   - drains the console (a full pty would block init), appends it to
//     console.log (rotated at 1 MiB) and keeps the last 4 KiB for new clients;
//   - serves the monitor socket's simple requests: ping, console, resize;
//   - for anything else (stop) and when init exits, executes the lodge binary
//     again as `__monitor ROOT NAME resume`, handing over the socket, the
//     console and the pending request, and Go carries on.
//
// On entry, $_LODGE_WATCH_FDS names four descriptors, comma-separated: the
// monitor socket (listening), the console's pty master, the lodge binary (to
// execute on hand-over) and a memfd with the console history so far. The Go
// monitor cannot put them at fixed numbers: its runtime's own descriptors live
// there until the exec. This program moves them to 3, 4, 5 and 6 first thing.
// Environment: _LODGE_WATCH_INIT (init's pid, a child of this process),
// _LODGE_WATCH_LOG (console.log's path). argv is the Go monitor's; its last
// word ("watch") becomes "resume" on hand-over.
//
// On hand-over the Go monitor gets: 3 the socket, 4 the console master, 5 the
// connection of the pending request (if any) with the request line in
// $_LODGE_RESUME_REQUEST.
#include "helper.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

enum {
	LISTEN_FD = 3, MASTER_FD = 4, EXE_FD = 5, HISTORY_FD = 6, // after place_fds
	CONN_FD = 5,                                              // on hand-over
	MAX_CONNS = 32,
	HISTORY = 4096,
	LOG_LIMIT = 1 << 20,
	REQUEST_MAX = 1024,
	EIO_PAUSE_MS = 50,
};

struct conn {
	int fd;       // -1 when the slot is free
	int console;  // attached to the console (else: reading its request)
	size_t len;
	char req[REQUEST_MAX];
};

static struct {
	char **argv;
	const char *log_path;
	int log_fd;
	off_t log_size;
	int init_pidfd;
	int master_paused; // no process holds the console open: retry later
	char history[HISTORY];
	size_t history_len;
	struct conn conns[MAX_CONNS];
} w;

static void log_console(const char *buf, size_t n)
{
	if (w.log_fd >= 0 && w.log_size + (off_t)n > LOG_LIMIT) {
		char rotated[4096];
		close(w.log_fd);
		snprintf(rotated, sizeof(rotated), "%s.1", w.log_path);
		rename(w.log_path, rotated);
		w.log_fd = open(w.log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		w.log_size = 0;
	}
	if (w.log_fd >= 0 && write(w.log_fd, buf, n) > 0)
		w.log_size += (off_t)n;
}

static void remember(const char *buf, size_t n)
{
	if (n >= HISTORY) {
		memcpy(w.history, buf + n - HISTORY, HISTORY);
		w.history_len = HISTORY;
		return;
	}
	if (w.history_len + n > HISTORY) {
		size_t drop = w.history_len + n - HISTORY;
		memmove(w.history, w.history + drop, w.history_len - drop);
		w.history_len -= drop;
	}
	memcpy(w.history + w.history_len, buf, n);
	w.history_len += n;
}

static void drop(struct conn *c)
{
	close(c->fd);
	c->fd = -1;
}

// write_all writes to a client; a client that cannot keep up is dropped rather
// than stalling the console.
static void send_client(struct conn *c, const char *buf, size_t n)
{
	while (n > 0) {
		ssize_t k = write(c->fd, buf, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			drop(c);
			return;
		}
		buf += k;
		n -= (size_t)k;
	}
}

static void read_console(void)
{
	char buf[4096];
	ssize_t n = read(MASTER_FD, buf, sizeof(buf));

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) { // EIO: between two gettys, nobody holds the console
		w.master_paused = 1;
		return;
	}
	log_console(buf, (size_t)n);
	remember(buf, (size_t)n);
	for (int i = 0; i < MAX_CONNS; i++)
		if (w.conns[i].fd >= 0 && w.conns[i].console)
			send_client(&w.conns[i], buf, (size_t)n);
}

// hand_over executes the Go monitor in place with the socket, the console and
// the pending request. It returns only if that fails.
static void hand_over(struct conn *pending)
{
	enum { EXE_MOVED = 101, CONN_MOVED = 100 };
	int last = 0;

	while (w.argv[last + 1] != NULL)
		last++;
	w.argv[last] = "resume";
	// The lodge binary moves out of the way of the connection's slot (5).
	if (dup3(EXE_FD, EXE_MOVED, O_CLOEXEC) < 0)
		return;
	close(EXE_FD);
	if (pending != NULL) {
		pending->req[pending->len] = '\0';
		setenv("_LODGE_RESUME_REQUEST", pending->req, 1);
		if (dup2(pending->fd, CONN_MOVED) < 0 || dup2(CONN_MOVED, CONN_FD) < 0)
			return;
		close(CONN_MOVED);
	}
	// The socket and the console survive the exec; everything else closes.
	fcntl(LISTEN_FD, F_SETFD, 0);
	fcntl(MASTER_FD, F_SETFD, 0);
	fcntl(LISTEN_FD, F_SETFL, 0);
	fexecve(EXE_MOVED, w.argv, environ);
}

static int field_int(const char *req, const char *name)
{
	const char *p = strstr(req, name);
	return p == NULL ? 0 : atoi(p + strlen(name));
}

static void set_size(const char *req)
{
	struct winsize ws = { .ws_row = (unsigned short)field_int(req, "\"rows\":"),
			      .ws_col = (unsigned short)field_int(req, "\"cols\":") };
	if (ws.ws_row > 0 && ws.ws_col > 0)
		ioctl(MASTER_FD, TIOCSWINSZ, &ws);
}

static const char ok_reply[] = "{\"ok\":true}\n";

// serve answers one complete request line.
static void serve(struct conn *c)
{
	c->req[c->len] = '\0';
	if (strstr(c->req, "\"op\":\"ping\"") != NULL) {
		send_client(c, ok_reply, sizeof(ok_reply) - 1);
		if (c->fd >= 0)
			drop(c);
	} else if (strstr(c->req, "\"op\":\"resize\"") != NULL) {
		set_size(c->req);
		send_client(c, ok_reply, sizeof(ok_reply) - 1);
		if (c->fd >= 0)
			drop(c);
	} else if (strstr(c->req, "\"op\":\"console\"") != NULL) {
		set_size(c->req);
		send_client(c, ok_reply, sizeof(ok_reply) - 1);
		if (c->fd >= 0)
			send_client(c, w.history, w.history_len);
		if (c->fd >= 0)
			c->console = 1;
	} else {
		hand_over(c); // stop, and whatever Go knows and this loop does not
		drop(c);
	}
}

static void read_client(struct conn *c)
{
	if (c->console) {
		char buf[1024];
		ssize_t n = read(c->fd, buf, sizeof(buf));
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			drop(c);
			return;
		}
		if (write(MASTER_FD, buf, (size_t)n) < 0 && errno != EAGAIN)
			drop(c);
		return;
	}
	ssize_t n = read(c->fd, c->req + c->len, REQUEST_MAX - 1 - c->len);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0 || c->len + (size_t)n >= REQUEST_MAX - 1) {
		drop(c);
		return;
	}
	c->len += (size_t)n;
	if (memchr(c->req, '\n', c->len) != NULL)
		serve(c);
}

static void accept_client(void)
{
	int fd = accept4(LISTEN_FD, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0)
		return;
	for (int i = 0; i < MAX_CONNS; i++) {
		if (w.conns[i].fd < 0) {
			w.conns[i] = (struct conn){ .fd = fd };
			return;
		}
	}
	close(fd); // too many at once
}

// place_fds moves the descriptors named in $_LODGE_WATCH_FDS to 3, 4, 5, 6,
// through numbers above any of them so that none is overwritten early.
static void place_fds(void)
{
	const char *list = getenv("_LODGE_WATCH_FDS");
	int from[4], tmp[4];

	if (list == NULL || sscanf(list, "%d,%d,%d,%d", &from[0], &from[1], &from[2], &from[3]) != 4)
		die_msg("watch: $_LODGE_WATCH_FDS must name four descriptors");
	for (int i = 0; i < 4; i++) {
		tmp[i] = fcntl(from[i], F_DUPFD_CLOEXEC, 200);
		if (tmp[i] < 0)
			die("watch: move descriptors");
		close(from[i]);
	}
	for (int i = 0; i < 4; i++) {
		if (dup2(tmp[i], LISTEN_FD + i) < 0)
			die("watch: move descriptors");
		close(tmp[i]);
	}
	unsetenv("_LODGE_WATCH_FDS");
}

static void setup(char **argv)
{
	struct stat st;

	place_fds();
	fds_from(HISTORY_FD + 1, 0); // nothing else is ours to hand on
	w.argv = argv;
	w.log_path = getenv("_LODGE_WATCH_LOG");
	w.log_fd = w.log_path ? open(w.log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600) : -1;
	if (w.log_fd >= 0 && fstat(w.log_fd, &st) == 0)
		w.log_size = st.st_size;
	w.init_pidfd = (int)syscall(SYS_pidfd_open, (pid_t)env_long("_LODGE_WATCH_INIT", 0), 0);
	if (w.init_pidfd < 0)
		die("watch init");
	for (int i = 0; i < MAX_CONNS; i++)
		w.conns[i].fd = -1;
	ssize_t n = pread(HISTORY_FD, w.history, HISTORY, 0);
	w.history_len = n > 0 ? (size_t)n : 0;
	close(HISTORY_FD);
	fcntl(LISTEN_FD, F_SETFL, O_NONBLOCK);
	fcntl(MASTER_FD, F_SETFL, O_NONBLOCK);
	fcntl(LISTEN_FD, F_SETFD, FD_CLOEXEC);
	fcntl(MASTER_FD, F_SETFD, FD_CLOEXEC);
	fcntl(EXE_FD, F_SETFD, FD_CLOEXEC);
	unsetenv("_LODGE_WATCH");
	unsetenv("_LODGE_WATCH_INIT");
	unsetenv("_LODGE_WATCH_LOG");
	signal(SIGPIPE, SIG_IGN);
	signal(SIGCHLD, SIG_DFL); // keep init's exit status for Go to collect
}

void watch_mode(char **argv)
{
	struct pollfd fds[3 + MAX_CONNS];
	int slot[3 + MAX_CONNS];

	setup(argv);
	for (;;) {
		int n = 0;
		fds[n++] = (struct pollfd){ .fd = w.init_pidfd, .events = POLLIN };
		fds[n++] = (struct pollfd){ .fd = LISTEN_FD, .events = POLLIN };
		fds[n++] = (struct pollfd){ .fd = w.master_paused ? -1 : MASTER_FD, .events = POLLIN };
		for (int i = 0; i < MAX_CONNS; i++) {
			if (w.conns[i].fd >= 0) {
				slot[n] = i;
				fds[n++] = (struct pollfd){ .fd = w.conns[i].fd, .events = POLLIN };
			}
		}
		int ready = poll(fds, (nfds_t)n, w.master_paused ? EIO_PAUSE_MS : -1);
		if (ready < 0 && errno != EINTR)
			die("watch: poll");
		w.master_paused = 0;
		if (ready <= 0)
			continue;
		if (fds[0].revents) {
			hand_over(NULL); // init exited: Go reaps it, tears down, maybe reboots
			die("watch: hand over to lodge");
		}
		if (fds[1].revents)
			accept_client();
		if (fds[2].revents)
			read_console();
		for (int i = 3; i < n; i++)
			if (fds[i].revents && w.conns[slot[i]].fd >= 0)
				read_client(&w.conns[slot[i]]);
	}
}
