// The sanitizers' settings for `make test-sanitize`, which builds the helper
// with -fsanitize=address,undefined and -DLODGE_SANITIZE_LOG=PATH; an
// ordinary build compiles nothing here. They are compiled in rather than
// read from $ASAN_OPTIONS because lodge runs the helper with environments of
// its own (a container command's, the monitor's), where such a variable
// would not reach it.
//
//   halt_on_error=1   the first report ends the helper: a run must fail
//   log_path=PATH     reports go to PATH.PID, which the tests look for
//                     afterwards (a report from inside a container's mount
//                     namespace, where PATH does not exist, makes the
//                     sanitizer die with "Can't open file" on stderr instead)
//   detect_leaks=0    every mode ends in exec or _exit, where LeakSanitizer
//                     never runs, and its tracer could not attach inside a
//                     container's user namespace and seccomp filter anyway
#ifdef LODGE_SANITIZE_LOG
const char *__asan_default_options(void);
const char *__ubsan_default_options(void);

const char *__asan_default_options(void)
{
	return "halt_on_error=1:detect_leaks=0:log_path=" LODGE_SANITIZE_LOG;
}

const char *__ubsan_default_options(void)
{
	return "halt_on_error=1:print_stacktrace=1:log_path=" LODGE_SANITIZE_LOG;
}
#else
typedef int lodge_no_sanitizer; // ISO C wants something in a file
#endif
