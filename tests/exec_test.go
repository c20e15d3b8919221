package tests

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestExec(t *testing.T) {
	e := newEnv(t)
	e.createBusybox("x1")
	e.must("start", "x1")
	cases := []struct {
		name   string
		stdin  string
		args   []string
		code   int
		stdout string
	}{
		{"exit status passes through", "", []string{"--", "sh", "-c", "exit 7"}, 7, ""},
		{"signal death is 128+N", "", []string{"--", "sh", "-c", "kill -9 $$"}, 137, ""},
		{"stdin passes through", "hello\n", []string{"--", "cat"}, 0, "hello\n"},
		{"stderr passes through", "", []string{"--", "sh", "-c", "echo out; echo err >&2"}, 0, "out\n"},
		{"user by name", "", []string{"--user", "nobody", "--", "id", "-u"}, 0, "65534\n"},
		{"user and group by number", "", []string{"-u", "1000:1000", "--", "sh", "-c", "echo $(id -u):$(id -g)"}, 0, "1000:1000\n"},
		{"env", "", []string{"-e", "FOO=bar", "--env", "BAZ=qux", "--", "sh", "-c", "echo $FOO$BAZ"}, 0, "barqux\n"},
		{"cwd", "", []string{"--cwd", "/tmp", "--", "pwd"}, 0, "/tmp\n"},
		{"default cwd is home", "", []string{"--", "pwd"}, 0, "/root\n"},
		{"clean environment", "", []string{"--", "sh", "-c", "echo $container:$HOME:$USER"}, 0, "lodge:/root:root\n"},
		{"command not found is 127", "", []string{"--", "no-such-command"}, 127, ""},
		{"not executable is 126", "", []string{"--", "/etc/passwd"}, 126, ""},
		{"runs in the container's pid namespace", "", []string{"--", "sh", "-c", "cat /proc/1/comm"}, 0, "init\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.runInput(c.stdin, append([]string{"exec", "x1"}, c.args...)...)
			if r.code != c.code || (c.stdout != "" && r.stdout != c.stdout) {
				t.Fatalf("want exit %d stdout %q, got %s", c.code, c.stdout, r)
			}
		})
	}
	if r := e.run("exec", "x1", "--", "sh", "-c", "echo err >&2"); r.stderr != "err\n" {
		t.Errorf("stderr = %q", r.stderr)
	}
	// lodge's own failures exit 125 and say what went wrong.
	e.expectFail(125, "no such user", "exec", "x1", "--user", "nosuchuser", "--", "true")
	e.expectFail(125, "is not running", "exec", "nostart", "--", "true")
	e.createBusybox("stopped")
	e.expectFail(125, "is not running", "exec", "stopped", "--", "true")
}

// TestExecJoinsCgroup: an exec'd process is counted in the container's cgroup.
func TestExecJoinsCgroup(t *testing.T) {
	e := newEnv(t)
	e.createBusybox("x2")
	e.must("start", "x2")
	out := e.must("exec", "x2", "--", "cat", "/proc/self/cgroup")
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.HasSuffix(line, ":/") {
			t.Errorf("exec'd process is outside the container's cgroup: %s", line)
		}
	}
}

// TestExecPty runs exec with a terminal on stdin: the command gets a pty from
// the container's own devpts.
func TestExecPty(t *testing.T) {
	e := newEnv(t)
	e.createBusybox("x3")
	e.must("start", "x3")
	master, slave := openPty(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := e.command(ctx, "exec", "x3", "--", "sh", "-c", "tty; stty size; exit 3")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	unix.IoctlSetWinsize(int(slave.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 33, Col: 101})
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	output, _ := io.ReadAll(master) // EIO once lodge exits
	err := cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 3 {
		t.Fatalf("exit status %d (%v), want 3; output:\n%s", code, err, output)
	}
	if !regexpFind(`/dev/pts/\d+`, string(output)) || !strings.Contains(string(output), "33 101") {
		t.Fatalf("want a container pty of size 33x101, got:\n%s", output)
	}
}

// openPty returns a pty pair from the host's devpts.
func openPty(t *testing.T) (*os.File, *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	fd, _, errno := unix.Syscall(unix.SYS_IOCTL, master.Fd(), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY)
	if errno != 0 {
		t.Fatal(errno)
	}
	slave := os.NewFile(fd, "pty-slave")
	t.Cleanup(func() { master.Close(); slave.Close() })
	return master, slave
}

// TestConsole attaches to the console with pipes: the login prompt shows (the
// recent history is replayed), keystrokes reach getty, Ctrl-a q detaches.
func TestConsole(t *testing.T) {
	e := newEnv(t)
	e.createBusybox("k1")
	e.must("start", "k1")
	waitUntil(t, "getty on the console", func() bool {
		return strings.Contains(e.must("exec", "k1", "--", "ps"), "getty")
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := e.command(ctx, "console", "k1")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	seen := readUntil(t, stdout, "k1 login:")
	t.Logf("console showed:\n%s", seen)
	io.WriteString(stdin, "root\n") // getty answers with a password prompt
	readUntil(t, stdout, "Password:")
	io.WriteString(stdin, "\x01q")
	rest, _ := io.ReadAll(stdout)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("console exit: %v\n%s", err, rest)
	}
	if !strings.Contains(string(rest), "Detached") {
		t.Errorf("no detach message after Ctrl-a q:\n%s", rest)
	}
	if i := e.info("k1"); i.State != "RUNNING" {
		t.Errorf("container state after detaching: %s", i.State)
	}
}

// readUntil reads r until want appears, failing the test if it does not.
func readUntil(t *testing.T, r io.Reader, want string) string {
	t.Helper()
	var got strings.Builder
	buf := make([]byte, 512)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !strings.Contains(got.String(), want) {
			n, err := r.Read(buf)
			got.Write(buf[:n])
			if err != nil {
				return
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("waited 30s for %q; got:\n%s", want, got.String())
	}
	if !strings.Contains(got.String(), want) {
		t.Fatalf("output ended before %q; got:\n%s", want, got.String())
	}
	return got.String()
}
