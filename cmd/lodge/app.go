package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"lodge/internal/helper"
	"lodge/internal/store"
	"lodge/manager"
	"lodge/remote/client"
	"lodge/templates"
)

// app carries what every command needs: the streams and the lodge root.
type app struct {
	stdin          *os.File
	stdout, stderr io.Writer
	root           string
	// exitCode lets a command (exec) choose the process exit status.
	exitCode int
	// openManager and openRemote are replaceable so that flag parsing can be
	// tested without root.
	openManager func(root string) (*manager.Manager, error)
	openRemote  func(root, name string) (*client.Client, error)
}

func newApp() *app {
	return &app{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, openManager: manager.New, openRemote: client.Open}
}

func (a *app) manager() (*manager.Manager, error) { return a.openManager(a.root) }

// progress prints one status line on stderr.
func (a *app) progress(format string, args ...any) {
	fmt.Fprintf(a.stderr, format+"\n", args...)
}

// reporter draws progress bars and steps on stderr.
func (a *app) reporter() templates.Reporter {
	fd := ^uintptr(0)
	if f, ok := a.stderr.(*os.File); ok {
		fd = f.Fd()
	}
	return newProgressReporter(a.stderr, fd)
}

// run executes the command line and returns the process exit status.
func run(args []string, a *app) int {
	// No signal handling here: installing it starts a thread in the Go runtime,
	// a cost every command would pay. Commands that must clean up on Ctrl-C
	// (create) set it up themselves; the others can be interrupted safely, since
	// the monitor, not the CLI, carries out starts and stops.
	ctx := context.Background()
	cmd := newRootCmd(a)
	cmd.SetArgs(args)
	cmd.SetIn(a.stdin)
	cmd.SetOut(a.stdout)
	cmd.SetErr(a.stderr)
	err := cmd.ExecuteContext(ctx)
	if err != nil {
		fmt.Fprintf(a.stderr, "lodge: %v\n", err)
		return exitCodeOf(err)
	}
	return a.exitCode
}

// Exit statuses (documented in README.md).
const (
	exitOK       = 0
	exitFailure  = 1 // the operation failed
	exitUsage    = 2 // bad command line, name, configuration or template
	exitNotFound = 3 // no such container
	exitConflict = 4 // wrong state: exists, running, not running, in use
	exitNotRoot  = 5 // lodge needs root
	// the other host cannot take the container (migrate: its CPU, CRIU,
	// id pool or disk)
	exitIncompatible = 6
	// exec passes the command's status through; its own failures use these.
	exitExecFailed = helper.ExitHelperFailed // 125
)

// usageError marks command-line mistakes found by the commands themselves.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func exitCodeOf(err error) int {
	var usage usageError
	var execErr execError
	switch {
	case errors.Is(err, manager.ErrNotRoot):
		return exitNotRoot // exec included: lodge did not even try
	case errors.As(err, &execErr):
		return exitExecFailed
	case errors.As(err, &usage), errors.Is(err, manager.ErrInvalid), isFlagError(err):
		return exitUsage
	case errors.Is(err, store.ErrNotFound):
		return exitNotFound
	case errors.Is(err, manager.ErrExists), errors.Is(err, manager.ErrRunning), errors.Is(err, manager.ErrNotRunning), errors.Is(err, manager.ErrInUse),
		errors.Is(err, manager.ErrFrozen), errors.Is(err, manager.ErrBlocked):
		return exitConflict
	case errors.Is(err, manager.ErrIncompatible):
		return exitIncompatible
	}
	return exitFailure
}

// flagError wraps cobra's flag parsing errors (see newRootCmd).
type flagError struct{ err error }

func (e flagError) Error() string { return e.err.Error() + " (see --help)" }
func (e flagError) Unwrap() error { return e.err }

func isFlagError(err error) bool {
	var fe flagError
	return errors.As(err, &fe)
}

// maxArgs is cobra.MaximumNArgs with a message that names what is allowed.
func maxArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) > n {
			return usageError{fmt.Sprintf("%s takes %s (usage: %s)", cmd.CommandPath(), names, cmd.UseLine())}
		}
		return nil
	}
}

// exactArgs is cobra.ExactArgs with a message that names what is missing.
func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError{fmt.Sprintf("%s needs %s (usage: %s)", cmd.CommandPath(), names, cmd.UseLine())}
		}
		return nil
	}
}
