package templates

import (
	"os/exec"
	"runtime"
	"syscall"
)

// runBound runs a child process that must not outlive lodge (a copy or a
// build writing into a staging directory): run starts cmd and waits for it.
// cmd gets SIGKILL when lodge dies, however it dies (PR_SET_PDEATHSIG). The
// kernel sends that signal when the *thread* that forked the child exits, and
// Go ends a thread when a goroutine locked to it exits; so run runs on a
// goroutine of its own, locked to its thread until the child is reaped, and
// no other goroutine can end that thread under the child.
func runBound(cmd *exec.Cmd, run func() error) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		done <- run()
	}()
	return <-done
}
