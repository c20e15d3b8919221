// The monitor socket's request line, checked by the watcher exactly as the Go
// monitor checks it: the same grammar, the same steps in the same order, the
// same answers (manager/monitor/wire.go; the constants and replies come from
// the generated protocol.h). A line either is refused with a reply, or is a
// request the watcher answers itself, or is handed to Go whole: the watcher
// never guesses at a line it does not fully understand.
#include "helper.h"

#include <string.h>

struct token {
	const char *s;
	size_t len;
};

// A line of at most LODGE_REQUEST_MAX bytes has at most half as many
// non-empty tokens separated by single spaces.
enum { MAX_TOKENS = LODGE_REQUEST_MAX / 2 + 1 };

static const struct lodge_op_spec ops[LODGE_WATCHER_OPS] = LODGE_WATCHER_OPS_INIT;

static int token_is(struct token t, const char *s)
{
	return t.len == strlen(s) && memcmp(t.s, s, t.len) == 0;
}

// is_word: 1 to LODGE_TOKEN_MAX lowercase letters.
static int is_word(const char *s, size_t len)
{
	if (len == 0 || len > LODGE_TOKEN_MAX)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (s[i] < 'a' || s[i] > 'z')
			return 0;
	return 1;
}

// parse_number: decimal digits, no leading zero, at most 4294967295.
static int parse_number(const char *s, size_t len, unsigned long *out)
{
	unsigned long long v = 0;

	if (len == 0 || len > 10 || (len > 1 && s[0] == '0'))
		return 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
		v = v * 10 + (unsigned long long)(s[i] - '0');
	}
	if (v > 4294967295ULL)
		return 0;
	*out = (unsigned long)v;
	return 1;
}

// split cuts the line at single spaces; it returns 0 if a token is empty
// (a leading, trailing or doubled space, or an empty line).
static size_t split(const char *line, size_t len, struct token *t)
{
	size_t n = 0, start = 0;

	for (size_t i = 0; i <= len; i++) {
		if (i < len && line[i] != ' ')
			continue;
		if (i == start || n == MAX_TOKENS)
			return 0;
		t[n++] = (struct token){ line + start, i - start };
		start = i + 1;
	}
	return n;
}

// split_arg cuts KEY=VALUE; it returns 0 unless both are well-formed.
static int split_arg(struct token t, struct token *key, unsigned long *value)
{
	const char *eq = memchr(t.s, '=', t.len);

	if (eq == NULL)
		return 0;
	*key = (struct token){ t.s, (size_t)(eq - t.s) };
	return is_word(key->s, key->len) && parse_number(eq + 1, t.len - key->len - 1, value);
}

// args_wellformed checks step 4's arguments: KEY=VALUE, each key once.
static int args_wellformed(const struct token *t, size_t n)
{
	struct token keys[MAX_TOKENS];
	unsigned long value;

	for (size_t i = 0; i < n; i++) {
		if (!split_arg(t[i], &keys[i], &value))
			return 0;
		for (size_t j = 0; j < i; j++)
			if (keys[j].len == keys[i].len && memcmp(keys[j].s, keys[i].s, keys[i].len) == 0)
				return 0;
	}
	return 1;
}

static int find_op(struct token t)
{
	for (int i = 0; i < LODGE_WATCHER_OPS; i++)
		if (token_is(t, ops[i].name))
			return i;
	return -1;
}

// check_args checks step 6: every argument known and in range, and as many
// present as the operation's mode wants. Their values go to req->args.
static int check_args(const struct lodge_op_spec *op, const struct token *t, size_t n, struct request *req)
{
	for (size_t i = 0; i < n; i++) {
		struct token key;
		unsigned long value;
		int found = -1;

		split_arg(t[i], &key, &value); // well-formed: args_wellformed said so
		for (int a = 0; a < op->nargs; a++)
			if (token_is(key, op->args[a].key))
				found = a;
		if (found < 0 || value < op->args[found].min || value > op->args[found].max)
			return 0;
		req->args[found] = value;
	}
	switch (op->mode) {
	case LODGE_ARGS_TOGETHER:
		return n == 0 || n == (size_t)op->nargs;
	case LODGE_ARGS_REQUIRED:
		return n == (size_t)op->nargs;
	default:
		return 1;
	}
}

enum request_kind parse_request(const char *line, size_t len, struct request *req, const char **reply)
{
	struct token t[MAX_TOKENS];
	unsigned long version;
	size_t n;
	int op;

	*req = (struct request){ .op = -1 };
	*reply = LODGE_REPLY_MALFORMED;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)line[i] < 0x20 || (unsigned char)line[i] > 0x7e)
			return REQUEST_REFUSED;
	n = split(line, len, t);
	if (n < 2 || !token_is(t[0], LODGE_REQUEST_MAGIC) || !parse_number(t[1].s, t[1].len, &version))
		return REQUEST_REFUSED;
	if (version != LODGE_PROTOCOL_VERSION) {
		*reply = LODGE_REPLY_VERSION;
		return REQUEST_REFUSED;
	}
	if (n < 3 || !is_word(t[2].s, t[2].len) || !args_wellformed(t + 3, n - 3))
		return REQUEST_REFUSED;
	op = find_op(t[2]);
	if (op < 0)
		return REQUEST_FOR_GO;
	if (!check_args(&ops[op], t + 3, n - 3, req)) {
		*reply = ops[op].bad_args_reply;
		return REQUEST_REFUSED;
	}
	req->op = op;
	*reply = NULL;
	return REQUEST_WATCHER;
}
