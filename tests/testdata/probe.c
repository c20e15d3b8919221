/* probe: what the escape tests run on the host (as nobody) and inside
 * containers. Each mode prints one line: what it got, or the error.
 *
 *   probe euid             print the effective uid (setuid checks)
 *   probe stat PATH        can PATH be reached?
 *   probe open PATH        can PATH be opened for reading (device nodes)?
 *   probe connect ADDR     connect to a unix socket (ADDR @name: abstract)
 *   probe listen ADDR      listen on a unix socket and accept until killed
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static socklen_t address(const char *addr, struct sockaddr_un *sa) {
	memset(sa, 0, sizeof *sa);
	sa->sun_family = AF_UNIX;
	size_t n = strlen(addr);
	if (n >= sizeof sa->sun_path)
		n = sizeof sa->sun_path - 1;
	memcpy(sa->sun_path, addr, n);
	if (addr[0] == '@')
		sa->sun_path[0] = 0;
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (addr[0] == '@' ? 0 : 1));
}

static int fail(void) {
	printf("error: %s\n", strerror(errno));
	return 1;
}

int main(int argc, char **argv) {
	if (argc == 2 && !strcmp(argv[1], "euid")) {
		printf("%d\n", (int)geteuid());
		return 0;
	}
	if (argc != 3)
		return 2;
	if (!strcmp(argv[1], "stat")) {
		struct stat st;
		if (stat(argv[2], &st) < 0)
			return fail();
		printf("reached\n");
		return 0;
	}
	if (!strcmp(argv[1], "open")) {
		if (open(argv[2], O_RDONLY | O_NONBLOCK) < 0)
			return fail();
		printf("opened\n");
		return 0;
	}
	struct sockaddr_un sa;
	socklen_t len = address(argv[2], &sa);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0)
		return fail();
	if (!strcmp(argv[1], "connect")) {
		if (connect(fd, (struct sockaddr *)&sa, len) < 0)
			return fail();
		printf("connected\n");
		return 0;
	}
	if (!strcmp(argv[1], "listen")) {
		if (bind(fd, (struct sockaddr *)&sa, len) < 0 || listen(fd, 8) < 0)
			return fail();
		printf("listening\n");
		fflush(stdout);
		alarm(300); /* never outlive a test by long */
		for (;;) {
			int c = accept(fd, NULL, NULL);
			if (c >= 0)
				close(c);
		}
	}
	return 2;
}
