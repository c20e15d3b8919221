package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// runner runs the commands under test. A timed run measures the wall time
// of one command from fork to exit, as a user's shell would see it: stdin
// and stdout are /dev/null, stderr goes to a scratch file (kept for error
// messages), and nothing else is open in the child, because os/exec passes
// only fds 0-2 (lxc-attach would carry any other open fd into the
// container).
type runner struct {
	env     []string
	devNull *os.File
	errFile *os.File
	shorten func(string) string // for messages: temp paths to $TMP
}

func newRunner(env []string, scratch string, shorten func(string) string) (*runner, error) {
	devNull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	errFile, err := os.Create(scratch)
	if err != nil {
		devNull.Close()
		return nil, err
	}
	return &runner{env: env, devNull: devNull, errFile: errFile, shorten: shorten}, nil
}

// withEnv returns a runner that shares r's files but runs commands with
// the variables in vars (NAME=value) set, replacing r's values of the same
// names.
func (r *runner) withEnv(vars ...string) *runner {
	o := *r
	o.env = nil
	for _, kv := range r.env {
		name, _, _ := strings.Cut(kv, "=")
		if !slices.ContainsFunc(vars, func(v string) bool { return strings.HasPrefix(v, name+"=") }) {
			o.env = append(o.env, kv)
		}
	}
	o.env = append(o.env, vars...)
	return &o
}

func (r *runner) close() {
	r.devNull.Close()
	r.errFile.Close()
}

// timed runs argv and returns its wall time. The command is resolved and
// its stdio opened before the clock starts.
func (r *runner) timed(argv []string) (time.Duration, error) {
	if err := r.resetErrFile(); err != nil {
		return 0, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = r.env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = r.devNull, r.devNull, r.errFile
	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start)
	if err != nil {
		return elapsed, r.failure(argv, err, r.stderrText())
	}
	return elapsed, nil
}

// timedCPU is timed, and returns the CPU time (user and system) the command
// and the children it waited for used, from the kernel's rusage.
func (r *runner) timedCPU(argv []string) (wall, cpu time.Duration, err error) {
	if err := r.resetErrFile(); err != nil {
		return 0, 0, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = r.env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = r.devNull, r.devNull, r.errFile
	start := time.Now()
	err = cmd.Run()
	wall = time.Since(start)
	if cmd.ProcessState != nil {
		cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	if err != nil {
		return wall, cpu, r.failure(argv, err, r.stderrText())
	}
	return wall, cpu, nil
}

// timedOutput is timed, and returns what the command printed on stdout and
// stderr too: for commands that report a measurement of their own (the
// time `lodge snapshot create` kept a container frozen).
func (r *runner) timedOutput(argv []string) (time.Duration, string, error) {
	if err := r.resetErrFile(); err != nil {
		return 0, "", err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = r.env
	var stdout strings.Builder
	cmd.Stdin, cmd.Stdout, cmd.Stderr = r.devNull, &stdout, r.errFile
	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start)
	printed := stdout.String() + r.stderrText()
	if err != nil {
		return elapsed, printed, r.failure(argv, err, r.stderrText())
	}
	return elapsed, printed, nil
}

// output runs argv untimed, with a hang guard, and returns its stdout.
func (r *runner) output(argv ...string) (string, error) {
	return r.outputWithin(2*time.Minute, argv...)
}

// outputWithin is output with a hang guard of d: for commands that may
// legitimately take longer, such as a create that builds its image first.
func (r *runner) outputWithin(d time.Duration, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = r.env
	cmd.Stdin = r.devNull
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), r.failure(argv, err, stderr.String())
	}
	return stdout.String(), nil
}

func (r *runner) resetErrFile() error {
	if err := r.errFile.Truncate(0); err != nil {
		return err
	}
	_, err := r.errFile.Seek(0, 0)
	return err
}

func (r *runner) stderrText() string {
	data, _ := os.ReadFile(r.errFile.Name())
	return string(data)
}

func (r *runner) failure(argv []string, err error, stderr string) error {
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		err = fmt.Errorf("exit status %d", exitErr.ExitCode())
	}
	msg := fmt.Sprintf("%s: %v", r.display(argv), err)
	if s := strings.TrimSpace(stderr); s != "" {
		msg += ": " + lastLines(s, 8)
	}
	return errors.New(msg)
}

// display is argv as a user would type it, with temp paths shortened.
func (r *runner) display(argv []string) string {
	quoted := make([]string, len(argv))
	for i, arg := range argv {
		quoted[i] = shellQuote(arg)
	}
	return r.shorten(strings.Join(quoted, " "))
}

// shellQuote quotes arg for a POSIX shell when it needs it.
func shellQuote(arg string) string {
	if arg != "" && !strings.ContainsAny(arg, " \t\n'\"\\$&|;<>()*?[]{}~#!`") {
		return arg
	}
	return "'" + strings.ReplaceAll(arg, "'", `'\''`) + "'"
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// closeInheritedOnExec marks every descriptor above stderr close-on-exec.
// os/exec passes only stdio to children, but descriptors this process
// inherited without close-on-exec (from make, a shell, a CI runner) would
// reach them, and lxc-attach would carry them into the container.
func closeInheritedOnExec() error {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			unix.CloseOnExec(fd)
		}
	}
	return nil
}
