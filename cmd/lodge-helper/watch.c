// watch mode (_LODGE_WATCH=1): the monitor while the container runs and nobody
// asks anything hard of it. Once a container has booted, the Go monitor
// executes this in place (same process, so it stays the parent of init): a Go
// runtime costs about a megabyte per container just to wait, this loop a few
// dozen kilobytes. It does the idle work:
//
//   - drains the console (a full pty would block init), appends it to
//     console.log (rotated at LODGE_CONSOLE_LOG_LIMIT) and keeps the last
//     LODGE_CONSOLE_HISTORY bytes for new clients;
//   - serves the monitor socket's simple requests: ping, console, resize, signal,
//     and refuses malformed ones, exactly as the Go monitor does (request.c;
//     the protocol is defined once, in manager/monitor, and reaches C through
//     the generated protocol.h);
//   - when the kernel's OOM killer may have killed in the container, starts a
//     reporter, the lodge binary as `__monitor ROOT NAME oom`, which counts
//     the kills, logs the oom event, writes the count back on a pipe and
//     exits; the watcher goes on meanwhile (the console's clients and its
//     history stay), and reaps it when its pidfd says it exited;
//   - for any other well-formed request (stop) and when init exits, executes
//     the lodge binary again as `__monitor ROOT NAME resume`, handing over the
//     socket, the console and the pending request, and Go carries on.
//
// On entry, $_LODGE_WATCH_FDS names four or five descriptors, comma-separated:
// the monitor socket (listening), the console's pty master, the lodge binary
// (to execute on hand-over), a memfd with the console history so far, then
// optionally the container's OOM notifier (see cgroup.OOMNotifier): a v1
// eventfd, readable on news, or with $_LODGE_OOM_UNIFIED=1 cgroup2's
// memory.events itself, which the kernel marks POLLPRI on every change and
// which holds the count. The Go monitor cannot put them at fixed numbers: its
// runtime's own descriptors live there until the exec. This program moves
// them to 3, 4, 5, 6 (7) first thing.
// Environment: _LODGE_WATCH_INIT (init's pid, a child of this process),
// _LODGE_WATCH_LOG (console.log's path), _LODGE_OOM_SEEN (the OOM kills Go
// reported so far; the watcher keeps it up to date from its reporters and
// passes it on to them and to Go). argv is the Go monitor's; its last word
// ("watch") becomes "resume" on hand-over, "oom" in a reporter.
//
// On hand-over the Go monitor gets: 3 the socket, 4 the console master, 5 the
// connection of the pending request (if any) with the request line, without
// its newline, in $_LODGE_RESUME_REQUEST (LODGE_RESUME_* in protocol.h).
#include "helper.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

enum {
	LISTEN_FD = 3, MASTER_FD = 4, EXE_FD = 5, HISTORY_FD = 6, // after place_fds
	OOM_NOTIFY_FD = 7, // optional
	MIN_FDS = 4, MAX_FDS = 5,
	EXE_HIGH = 100, // a copy of the lodge binary's, to execute when 5 takes the pending connection
	MAX_CONNS = 32,
	HISTORY = LODGE_CONSOLE_HISTORY,
	LOG_LIMIT = LODGE_CONSOLE_LOG_LIMIT,
	REQUEST_MAX = LODGE_REQUEST_MAX,
	KEYS_MAX = 1024, // keystrokes read from a console client at once
	EIO_PAUSE_MS = 50,
	FIXED_POLLS = 5, // init, socket, console, OOM notifier, OOM reporter; then the clients
};

_Static_assert(LISTEN_FD == LODGE_RESUME_LISTEN_FD && MASTER_FD == LODGE_RESUME_MASTER_FD &&
		       EXE_FD == LODGE_RESUME_CONN_FD,
	       "the socket and the console stay where Go expects them; the connection replaces the binary's 5");
_Static_assert(KEYS_MAX >= REQUEST_MAX, "what follows a request line fits the keystroke buffer");

struct conn {
	int fd;          // -1 when the slot is free
	int console;     // attached to the console (else: reading its request)
	long long until; // reading its request: the deadline, in ms of CLOCK_MONOTONIC
	size_t len;
	char req[REQUEST_MAX + 1];
	size_t keys_off, keys_len; // console: keystrokes not yet written to the console
	char keys[KEYS_MAX];
};

static struct {
	char **argv;
	const char *log_path;
	int log_fd;
	off_t log_size;
	int init_pidfd;
	int oom_notifier;            // the OOM notifier is there
	int oom_unified;             // it is cgroup2's memory.events (else a v1 eventfd)
	unsigned long long oom_seen; // $_LODGE_OOM_SEEN, then what the reporters said
	pid_t reporter;              // the OOM reporter running (0: none)
	int reporter_pidfd;          // readable once it exited (-1: none)
	int reporter_out;            // the pipe it writes its count to
	int oom_again;               // news came while it ran: report again after it
	int master_paused; // no process holds the console open: retry later
	int accept_paused; // out of descriptors: accept again later, not in a busy loop
	char history[HISTORY];
	size_t history_len;
	struct conn conns[MAX_CONNS];
} w;

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void open_log(void)
{
	struct stat st;

	w.log_fd = open(w.log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	w.log_size = w.log_fd >= 0 && fstat(w.log_fd, &st) == 0 ? st.st_size : 0;
}

// log_console appends to console.log, rotated to console.log.1 at the limit.
// The console works on without its log if the file cannot be written.
static void log_console(const char *buf, size_t n)
{
	if (w.log_fd >= 0 && w.log_size + (off_t)n > LOG_LIMIT) {
		char rotated[PATH_MAX];
		close(w.log_fd);
		if (snprintf(rotated, sizeof(rotated), "%s.1", w.log_path) < (int)sizeof(rotated))
			rename(w.log_path, rotated);
		open_log();
		w.log_size = 0;
	}
	if (w.log_fd >= 0 && write_all(w.log_fd, buf, n) == 0)
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

// send_client writes to a client; a client that cannot keep up (its socket
// buffer is full) is dropped rather than stalling the console.
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

// answer sends a whole reply and ends the connection.
static void answer(struct conn *c, const char *reply)
{
	send_client(c, reply, strlen(reply));
	if (c->fd >= 0)
		drop(c);
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

// flush_keys writes a console client's pending keystrokes to the console as
// far as the pty takes them; the rest waits for POLLOUT (and the client is not
// read meanwhile: the pty's back-pressure reaches the client).
static void flush_keys(struct conn *c)
{
	while (c->keys_off < c->keys_len) {
		ssize_t k = write(MASTER_FD, c->keys + c->keys_off, c->keys_len - c->keys_off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EAGAIN)
			return;
		if (k <= 0) {
			drop(c);
			return;
		}
		c->keys_off += (size_t)k;
	}
	c->keys_off = c->keys_len = 0;
}

// set_last_arg replaces argv's last word (the mode: "watch").
static void set_last_arg(const char *word)
{
	int last = 0;

	while (w.argv[last + 1] != NULL)
		last++;
	w.argv[last] = (char *)word;
}

// start_reporter forks and executes the OOM reporter (`__monitor ROOT NAME
// oom`, see manager/monitor/oom.go) with $_LODGE_OOM_SEEN and a pipe at its
// descriptor 3 for the count it reports. Everything of the watcher's is
// close-on-exec: the reporter gets nothing else. It returns whether the
// reporter runs.
static int start_reporter(void)
{
	int out[2];
	char seen[32];
	pid_t pid;

	if (pipe2(out, O_CLOEXEC) < 0)
		return 0;
	pid = fork();
	if (pid == 0) { // the watcher is single-threaded: setenv is safe here
		snprintf(seen, sizeof(seen), "%llu", w.oom_seen);
		set_last_arg(LODGE_OOM_REPORT_ARG);
		if (dup2(out[1], LODGE_OOM_COUNT_FD) >= 0 && setenv(LODGE_OOM_SEEN_ENV, seen, 1) == 0)
			fexecve(EXE_HIGH, w.argv, environ);
		_exit(127);
	}
	close(out[1]);
	if (pid < 0) {
		close(out[0]);
		return 0;
	}
	w.reporter = pid;
	w.reporter_out = out[0];
	w.reporter_pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	return 1;
}

// finish_reporter reaps the reporter once it exited (or waits for it, if
// wait: it runs a second at most) and takes the count it reported.
static void finish_reporter(int wait)
{
	char buf[32];
	ssize_t n;
	int status;

	if (w.reporter == 0 || waitpid(w.reporter, &status, wait ? 0 : WNOHANG) == 0)
		return;
	n = read(w.reporter_out, buf, sizeof(buf) - 1);
	if (n > 0) {
		buf[n] = '\0';
		w.oom_seen = strtoull(buf, NULL, 10);
	}
	close(w.reporter_out);
	if (w.reporter_pidfd >= 0)
		close(w.reporter_pidfd);
	w.reporter = 0;
	w.reporter_pidfd = -1;
}

// hand_over executes the Go monitor in place with the socket, the console and
// the pending request (line: without its newline). It returns only if that
// fails, with the descriptors as they were. The pending connection replaces
// the lodge binary's 5 (which keeps the number from being taken by a client)
// and the binary is executed from its copy at EXE_HIGH.
static void hand_over(struct conn *pending, const char *line)
{
	char seen[32];

	finish_reporter(1); // its count, and its event before whatever Go reports
	snprintf(seen, sizeof(seen), "%llu", w.oom_seen);
	if (setenv(LODGE_OOM_SEEN_ENV, seen, 1) < 0)
		return;
	set_last_arg("resume");
	if (pending != NULL) {
		if (setenv(LODGE_RESUME_REQUEST_ENV, line, 1) < 0 ||
		    dup2(pending->fd, LODGE_RESUME_CONN_FD) < 0)
			return;
	}
	// The socket and the console survive the exec; everything else closes.
	fcntl(LISTEN_FD, F_SETFD, 0);
	fcntl(MASTER_FD, F_SETFD, 0);
	fcntl(LISTEN_FD, F_SETFL, 0);
	fexecve(EXE_HIGH, w.argv, environ);
	fcntl(LISTEN_FD, F_SETFL, O_NONBLOCK);
	fcntl(LISTEN_FD, F_SETFD, FD_CLOEXEC);
	fcntl(MASTER_FD, F_SETFD, FD_CLOEXEC);
	dup3(EXE_HIGH, EXE_FD, O_CLOEXEC);
	unsetenv(LODGE_RESUME_REQUEST_ENV);
}

// report_oom starts a reporter for the news, or notes it for later if one
// runs: the next reporter counts it then. Should the fork fail, Go reports
// (it counts the kills once it resumes).
static void report_oom(void)
{
	if (w.reporter != 0) {
		w.oom_again = 1;
		return;
	}
	w.oom_again = 0;
	if (!start_reporter()) {
		hand_over(NULL, NULL);
		die("watch: hand over to lodge");
	}
	if (w.reporter_pidfd < 0) // no pidfd to poll (the kernel gave init one, though)
		finish_reporter(1);
}

static void set_size(unsigned long rows, unsigned long cols)
{
	struct winsize ws = { .ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols };

	if (rows > 0 && cols > 0)
		ioctl(MASTER_FD, TIOCSWINSZ, &ws);
}

// attach makes c a console client: the history first, then whatever the
// client sent after its request line goes to the console.
static void attach(struct conn *c, const char *typed, size_t n)
{
	send_client(c, LODGE_REPLY_OK, strlen(LODGE_REPLY_OK));
	if (c->fd >= 0)
		send_client(c, w.history, w.history_len);
	if (c->fd < 0)
		return;
	c->console = 1;
	memcpy(c->keys, typed, n);
	c->keys_off = 0;
	c->keys_len = n;
	flush_keys(c);
}

// serve answers one complete request line, c->req[0..end), end at its newline.
static void serve(struct conn *c, size_t end)
{
	struct request req;
	const char *reply;

	c->req[end] = '\0';
	switch (parse_request(c->req, end, &req, &reply)) {
	case REQUEST_REFUSED:
		answer(c, reply);
		return;
	case REQUEST_FOR_GO: // stop, and whatever Go knows and this loop does not
		hand_over(c, c->req);
		answer(c, LODGE_REPLY_HAND_OVER_FAILED);
		return;
	case REQUEST_WATCHER:
		break;
	}
	switch (req.op) {
	case LODGE_OP_PING:
		answer(c, LODGE_REPLY_OK);
		break;
	case LODGE_OP_RESIZE:
		set_size(req.args[LODGE_ARG_RESIZE_ROWS], req.args[LODGE_ARG_RESIZE_COLS]);
		answer(c, LODGE_REPLY_OK);
		break;
	case LODGE_OP_SIGNAL:
		if (ioctl(MASTER_FD, TIOCSIG, (int)req.args[LODGE_ARG_SIGNAL_SIGNAL]) < 0)
			answer(c, LODGE_REPLY_NO_SIGNAL);
		else
			answer(c, LODGE_REPLY_OK);
		break;
	case LODGE_OP_CONSOLE:
		set_size(req.args[LODGE_ARG_CONSOLE_ROWS], req.args[LODGE_ARG_CONSOLE_COLS]);
		attach(c, c->req + end + 1, c->len - end - 1);
		break;
	}
}

static void read_keys(struct conn *c)
{
	ssize_t n = read(c->fd, c->keys, sizeof(c->keys));

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		drop(c);
		return;
	}
	c->keys_off = 0;
	c->keys_len = (size_t)n;
	flush_keys(c);
}

// read_request reads what the client sends until its request line is whole;
// the line ends at the first newline within LODGE_REQUEST_MAX bytes.
static void read_request(struct conn *c)
{
	ssize_t n = read(c->fd, c->req + c->len, REQUEST_MAX - c->len);
	char *nl;

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) { // the client closed before its line was whole
		if (c->len > 0)
			answer(c, LODGE_REPLY_INCOMPLETE);
		else
			drop(c);
		return;
	}
	c->len += (size_t)n;
	nl = memchr(c->req, '\n', c->len);
	if (nl != NULL)
		serve(c, (size_t)(nl - c->req));
	else if (c->len == REQUEST_MAX)
		answer(c, LODGE_REPLY_TOO_LONG);
}

static void accept_client(void)
{
	int fd = accept4(LISTEN_FD, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0) {
		w.accept_paused = errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM;
		return;
	}
	for (int i = 0; i < MAX_CONNS; i++) {
		if (w.conns[i].fd < 0) {
			w.conns[i].fd = fd;
			w.conns[i].console = 0;
			w.conns[i].len = 0;
			w.conns[i].keys_off = w.conns[i].keys_len = 0;
			w.conns[i].until = now_ms() + LODGE_REQUEST_TIMEOUT_MS;
			return;
		}
	}
	write_all(fd, LODGE_REPLY_BUSY, strlen(LODGE_REPLY_BUSY)); // best effort: it is closed either way
	close(fd);
}

// expire answers the clients whose request line is overdue and returns the
// poll timeout until the next deadline (-1: none).
static int expire(void)
{
	long long now = now_ms(), next = -1;

	for (int i = 0; i < MAX_CONNS; i++) {
		struct conn *c = &w.conns[i];
		if (c->fd < 0 || c->console)
			continue;
		if (c->until <= now) {
			answer(c, LODGE_REPLY_INCOMPLETE);
			continue;
		}
		if (next < 0 || c->until - now < next)
			next = c->until - now;
	}
	return (int)next;
}

// parse_fds parses $_LODGE_WATCH_FDS: four or five descriptor numbers,
// comma-separated; it returns how many.
static int parse_fds(int from[MAX_FDS])
{
	const char *list = getenv("_LODGE_WATCH_FDS");
	char copy[96], *save = NULL, *tok;
	int n = 0;

	if (list == NULL || strlen(list) >= sizeof(copy))
		die_msg("watch: $_LODGE_WATCH_FDS must name four or five descriptors");
	strcpy(copy, list);
	for (tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
		if (n == MAX_FDS)
			die_msg("watch: $_LODGE_WATCH_FDS must name four or five descriptors");
		from[n++] = (int)parse_ulong(tok, INT_MAX, "descriptor in $_LODGE_WATCH_FDS");
	}
	if (n < MIN_FDS)
		die_msg("watch: $_LODGE_WATCH_FDS must name four or five descriptors");
	return n;
}

// place_fds moves the descriptors named in $_LODGE_WATCH_FDS to 3, 4, 5, ...,
// through numbers above any of them so that none is overwritten early. It
// returns how many there are.
static int place_fds(void)
{
	int from[MAX_FDS], tmp[MAX_FDS];
	int n = parse_fds(from);

	for (int i = 0; i < n; i++) {
		tmp[i] = fcntl(from[i], F_DUPFD_CLOEXEC, 200);
		if (tmp[i] < 0)
			die("watch: move descriptors");
		close(from[i]);
	}
	for (int i = 0; i < n; i++) {
		if (dup2(tmp[i], LISTEN_FD + i) < 0)
			die("watch: move descriptors");
		close(tmp[i]);
	}
	unsetenv("_LODGE_WATCH_FDS");
	return n;
}

// oom_news consumes the OOM notification and tells whether Go should look:
// on v1 every notification (the kernel sends one when the container runs out
// of memory; Go sums the kills of its whole tree; one read drains the
// eventfd), on cgroup2 only once memory.events counts more kills than Go
// reported (it changes on every memory event, and most are no kill; reading
// it arms the next POLLPRI).
static int oom_news(void)
{
	char buf[4096];
	const char *line;
	ssize_t n;

	if (!w.oom_unified) {
		(void)read(OOM_NOTIFY_FD, buf, sizeof(buf)); // one read takes the eventfd's whole count
		return 1;
	}
	n = pread(OOM_NOTIFY_FD, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	line = strstr(buf, "\noom_kill "); // never the first line ("low")
	return line != NULL && strtoull(line + strlen("\noom_kill "), NULL, 10) > w.oom_seen;
}

static void setup(char **argv)
{
	int handed = place_fds();

	fds_from(LISTEN_FD + handed, 0); // nothing else is ours to hand on
	w.oom_notifier = handed > MIN_FDS;
	w.oom_unified = getenv(LODGE_OOM_UNIFIED_ENV) != NULL;
	w.oom_seen = (unsigned long long)env_num(LODGE_OOM_SEEN_ENV, 0, LONG_MAX);
	w.reporter_pidfd = -1;
	if (w.oom_notifier && (fcntl(OOM_NOTIFY_FD, F_SETFD, FD_CLOEXEC) < 0 ||
			       fcntl(OOM_NOTIFY_FD, F_SETFL, O_NONBLOCK) < 0))
		die("watch: set up the OOM notifier");
	if (dup3(EXE_FD, EXE_HIGH, O_CLOEXEC) < 0)
		die("watch: copy the lodge binary's descriptor");
	w.argv = argv;
	w.log_path = getenv("_LODGE_WATCH_LOG");
	w.log_fd = -1;
	if (w.log_path != NULL)
		open_log();
	w.init_pidfd = (int)syscall(SYS_pidfd_open, (pid_t)env_num("_LODGE_WATCH_INIT", 0, INT_MAX), 0);
	if (w.init_pidfd < 0 && errno != ESRCH)
		die("watch init");
	for (int i = 0; i < MAX_CONNS; i++)
		w.conns[i].fd = -1;
	ssize_t n = pread(HISTORY_FD, w.history, HISTORY, 0);
	w.history_len = n > 0 ? (size_t)n : 0;
	close(HISTORY_FD);
	if (fcntl(LISTEN_FD, F_SETFL, O_NONBLOCK) < 0 || fcntl(MASTER_FD, F_SETFL, O_NONBLOCK) < 0 ||
	    fcntl(LISTEN_FD, F_SETFD, FD_CLOEXEC) < 0 || fcntl(MASTER_FD, F_SETFD, FD_CLOEXEC) < 0 ||
	    fcntl(EXE_FD, F_SETFD, FD_CLOEXEC) < 0)
		die("watch: set up the socket and the console");
	unsetenv("_LODGE_WATCH");
	unsetenv("_LODGE_WATCH_INIT");
	unsetenv("_LODGE_WATCH_LOG");
	unsetenv(LODGE_OOM_UNIFIED_ENV);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGCHLD, SIG_DFL); // keep init's exit status for Go to collect
}

// poll_set fills fds for the next poll: init, the socket, the console, the
// OOM notifier and the OOM reporter's pidfd (-1 without one: poll skips it),
// then the clients (slot[i]: the client of fds[i]). A console client with
// keystrokes the pty has not taken yet is not read; the console is polled
// for room instead.
static int poll_set(struct pollfd *fds, int *slot)
{
	int n = 0, keys_waiting = 0;

	fds[n++] = (struct pollfd){ .fd = w.init_pidfd, .events = POLLIN };
	fds[n++] = (struct pollfd){ .fd = w.accept_paused ? -1 : LISTEN_FD, .events = POLLIN };
	fds[n++] = (struct pollfd){ .fd = MASTER_FD };
	fds[n++] = (struct pollfd){ .fd = w.oom_notifier ? OOM_NOTIFY_FD : -1,
				    .events = w.oom_unified ? POLLPRI : POLLIN };
	fds[n++] = (struct pollfd){ .fd = w.reporter_pidfd, .events = POLLIN };
	for (int i = 0; i < MAX_CONNS; i++) {
		struct conn *c = &w.conns[i];
		if (c->fd < 0)
			continue;
		if (c->keys_len > 0) {
			keys_waiting = 1;
			continue;
		}
		slot[n] = i;
		fds[n++] = (struct pollfd){ .fd = c->fd, .events = POLLIN };
	}
	// While no process holds the console (paused), it is not polled at all:
	// it would report POLLHUP at once, whatever the events asked for.
	fds[2].events = (short)(POLLIN | (keys_waiting ? POLLOUT : 0));
	if (w.master_paused)
		fds[2].fd = -1;
	return n;
}

static int poll_timeout(void)
{
	int timeout = expire();

	if ((w.master_paused || w.accept_paused) && (timeout < 0 || timeout > EIO_PAUSE_MS))
		timeout = EIO_PAUSE_MS;
	return timeout;
}

static void flush_all_keys(void)
{
	for (int i = 0; i < MAX_CONNS; i++)
		if (w.conns[i].fd >= 0 && w.conns[i].keys_len > 0)
			flush_keys(&w.conns[i]);
}

void watch_mode(char **argv)
{
	struct pollfd fds[FIXED_POLLS + MAX_CONNS];
	int slot[FIXED_POLLS + MAX_CONNS];

	setup(argv);
	if (w.init_pidfd < 0) {
		// init ended and the Go monitor reaped it just before it executed
		// this: Go tears down (and reports the stop) as for any exit.
		hand_over(NULL, NULL);
		die("watch: hand over to lodge");
	}
	for (;;) {
		int timeout = poll_timeout();
		int n = poll_set(fds, slot);
		int ready = poll(fds, (nfds_t)n, timeout);
		if (ready < 0 && errno != EINTR)
			die("watch: poll");
		w.master_paused = w.accept_paused = 0;
		if (ready <= 0)
			continue;
		if (fds[0].revents) {
			hand_over(NULL, NULL); // init exited: Go reaps it, tears down, maybe reboots
			die("watch: hand over to lodge");
		}
		if (fds[3].revents && oom_news())
			report_oom();
		if (fds[4].revents) {
			finish_reporter(0);
			if (w.reporter == 0 && w.oom_again)
				report_oom(); // news that came while it ran
		}
		if (fds[1].revents)
			accept_client();
		if (fds[2].revents & POLLOUT)
			flush_all_keys();
		if (fds[2].revents & ~POLLOUT)
			read_console();
		for (int i = FIXED_POLLS; i < n; i++) {
			struct conn *c = &w.conns[slot[i]];
			if (!fds[i].revents || c->fd < 0)
				continue;
			if (c->console)
				read_keys(c);
			else
				read_request(c);
		}
	}
}
