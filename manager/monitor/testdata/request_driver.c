// A driver for cmd/lodge-helper/request.c, for the differential test in
// protocol_diff_test.go: each input line is a request line in hex; each output
// line is the watcher's verdict on it:
//
//   R <reply>          refused, with the reply line (its newline dropped)
//   W <op> <a0> <a1>   an operation the watcher answers, with its arguments
//   G                  handed to Go
#include "helper.h"

#include <stdio.h>
#include <string.h>

static int unhex(const char *s, char *out, size_t *n)
{
	size_t len = strlen(s);

	if (len % 2 != 0)
		return 0;
	for (size_t i = 0; i < len; i += 2) {
		unsigned v;
		if (sscanf(s + i, "%2x", &v) != 1)
			return 0;
		out[i / 2] = (char)v;
	}
	*n = len / 2;
	return 1;
}

int main(void)
{
	static char in[1 << 16], line[1 << 15];

	while (fgets(in, sizeof(in), stdin) != NULL) {
		struct request req;
		const char *reply;
		size_t n;

		in[strcspn(in, "\n")] = '\0';
		if (!unhex(in, line, &n))
			return 2;
		switch (parse_request(line, n, &req, &reply)) {
		case REQUEST_REFUSED:
			printf("R %.*s\n", (int)strlen(reply) - 1, reply);
			break;
		case REQUEST_WATCHER:
			printf("W %d %lu %lu\n", req.op, req.args[0], req.args[1]);
			break;
		case REQUEST_FOR_GO:
			printf("G\n");
			break;
		}
	}
	return 0;
}
