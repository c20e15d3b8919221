// lodge-helper: the C half of lodge, for work that needs a single-threaded
// process (which a Go program never is once its runtime has started) or a very
// small one. It is a static C program, built with musl where available (glibc's
// start-up probes CPU features with cpuid, which traps to the hypervisor under
// virtualization), installed next to the lodge binary. Its mode is chosen by
// the environment; see main.c.
#ifndef LODGE_HELPER_H
#define LODGE_HELPER_H

#define _GNU_SOURCE
#include <stddef.h>
#include <sys/types.h>

#include "protocol.h"

enum { EXIT_HELPER_FAILED = 125, EXIT_CANNOT_RUN = 126, EXIT_NOT_FOUND = 127 };

extern char **environ;

// util.c
void die(const char *step);
void die_msg(const char *msg);
long env_num(const char *name, long fallback, long max);
void clear_env(void);
void join_v1_cgroups(void);
void send_fd(int sock, int fd);
void fds_from(int first, int cloexec);
char *xstrdup(const char *s);
unsigned long parse_ulong(const char *s, unsigned long max, const char *what);
int write_all(int fd, const void *buf, size_t n);

// request.c: a monitor socket request line (without its newline).
enum request_kind {
	REQUEST_REFUSED, // malformed, or bad arguments: answer *reply
	REQUEST_WATCHER, // an operation the watcher answers itself (req)
	REQUEST_FOR_GO,  // well-formed, for an operation only Go knows: hand it over
};
struct request {
	int op; // LODGE_OP_*
	unsigned long args[LODGE_OP_ARGS_MAX]; // by LODGE_ARG_OP_KEY; 0 when absent
};
enum request_kind parse_request(const char *line, size_t len, struct request *req, const char **reply);

// The modes.
void exec_mode(int argc, char **argv);  // exec.c: lodge exec
void initstub_mode(char **argv);        // stub.c: a container's first process
void watch_mode(char **argv);           // watch.c: the monitor while idle
void supervise_mode(int argc, char **argv); // supervise.c: keep a server running
void attach_mode(void);                 // attach.c: mount into a running container

#endif
