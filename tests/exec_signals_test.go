package tests

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestExecSignalsFromTheCaller: lodge exec without a pty passes SIGTERM and
// SIGHUP sent to it on to the command, and Ctrl-C (SIGINT to the terminal's
// foreground process group, here lodge's own group) reaches the command
// while lodge lives on to report its exit status.
func TestExecSignalsFromTheCaller(t *testing.T) {
	e := newEnv(t)
	e.createBusybox("sig1")
	e.must("start", "sig1")
	cases := []struct {
		name  string
		sig   syscall.Signal
		group bool // to the process group, as the terminal sends Ctrl-C
		code  int
	}{
		{"SIGTERM to lodge", syscall.SIGTERM, false, 42},
		{"SIGHUP to lodge", syscall.SIGHUP, false, 43},
		{"Ctrl-C to the process group", syscall.SIGINT, true, 44},
		{"Ctrl-\\ to the process group", syscall.SIGQUIT, true, 45},
	}
	script := `trap "exit 42" TERM; trap "exit 43" HUP; trap "exit 44" INT; trap "exit 45" QUIT; echo ready; while :; do sleep 0.05; done`
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := e.command(ctx, "exec", "sig1", "-T", "--", "sh", "-c", script)
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // a job of its own, as in a shell
			stdout, _ := cmd.StdoutPipe()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			readUntil(t, stdout, "ready")
			target := cmd.Process.Pid
			if c.group {
				target = -target
			}
			if err := syscall.Kill(target, c.sig); err != nil {
				t.Fatal(err)
			}
			err := cmd.Wait()
			if code := cmd.ProcessState.ExitCode(); code != c.code {
				t.Fatalf("lodge exec after %v: exit %d (%v), want the command's %d", c.sig, code, err, c.code)
			}
		})
	}
	waitUntil(t, "no command left running in sig1", func() bool {
		return !strings.Contains(e.must("exec", "sig1", "--", "ps"), "sleep 0.05")
	})
}
