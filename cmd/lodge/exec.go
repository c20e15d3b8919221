package main

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"lodge/internal/terminal"
	"lodge/manager"
)

type execOptions struct {
	user  string
	env   []string
	cwd   string
	tty   bool
	noTTY bool
}

func newExecCmd(a *app) *cobra.Command {
	var opts execOptions
	cmd := &cobra.Command{
		Use:   "exec NAME [flags] -- COMMAND [ARG...]",
		Short: "Run a command in a running container; its exit status is passed through",
		Long: `Run a command in all of a running container's namespaces and in its init's cgroup.
A pty is used when stdin is a terminal (override with -t or -T). The command's exit
status becomes lodge's; lodge's own failures exit 125 (126: cannot run, 127: not found).`,
		Example: `  lodge exec web1 -- ps
  lodge exec web1 --user nobody --cwd /tmp -e FOO=bar -- sh -c 'id; pwd; echo $FOO'`,
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: completeNames(a),
		RunE: func(cmd *cobra.Command, args []string) error {
			if dash := cmd.ArgsLenAtDash(); dash > 1 {
				return usageError{"exec takes one container name before --: lodge exec NAME [flags] -- COMMAND"}
			}
			command := args[1:]
			if len(command) == 0 {
				return usageError{"exec needs a command: lodge exec NAME -- COMMAND [ARG...]"}
			}
			return runExec(cmd, a, args[0], command, opts)
		},
	}
	// Everything after "--" is the command's, flags included.
	cmd.Flags().StringVarP(&opts.user, "user", "u", "", "user inside the container: NAME, UID, NAME:GROUP or UID:GID (default root)")
	cmd.Flags().StringArrayVarP(&opts.env, "env", "e", nil, "environment variable KEY=VALUE (repeatable)")
	cmd.Flags().StringVarP(&opts.cwd, "cwd", "w", "", "working directory inside the container (default: the user's home)")
	cmd.Flags().BoolVarP(&opts.tty, "tty", "t", false, "always use a pty")
	cmd.Flags().BoolVarP(&opts.noTTY, "no-tty", "T", false, "never use a pty, even when stdin is a terminal")
	return cmd
}

func runExec(cmd *cobra.Command, a *app, name string, command []string, opts execOptions) error {
	if opts.tty && opts.noTTY {
		return usageError{"exec: -t and -T contradict each other"}
	}
	m, err := a.manager()
	if err != nil {
		return execFailed(err)
	}
	tty := opts.tty || (!opts.noTTY && terminal.IsTerminal(a.stdin))
	// Ctrl-C and Ctrl-\ on the terminal reach lodge and the helper (our
	// process group), which relays them to the command; lodge ignores them
	// for good, to live on and report the command's exit status.
	signal.Ignore(syscall.SIGINT, syscall.SIGQUIT)
	resize := make(chan manager.WindowSize, 1)
	run, err := m.StartExec(cmd.Context(), name, manager.ExecOptions{
		Args: command, User: opts.user, Env: opts.env, Cwd: opts.cwd,
		TTY: tty, Size: windowSize(a.stdin), Term: os.Getenv("TERM"), Resize: resize,
		Stdin: a.stdin, Stdout: a.stdout, Stderr: a.stderr, Signals: forwardSignals(),
	})
	if err != nil {
		return execFailed(err)
	}
	if tty {
		// The user's terminal is the pty's: raw, so that every key reaches
		// the command, and with its size changes passed on.
		restore := rawTerminal(a.stdin, resize)
		defer restore()
	}
	status, err := run.Wait()
	if err != nil {
		return execFailed(err)
	}
	a.exitCode = status
	return nil
}

// forwardSignals returns a channel of the SIGTERM and SIGHUP lodge gets, to
// pass them on to the command. It is set up before the command starts:
// done in the background to save the Go runtime's thread start, a SIGTERM
// sent as soon as the command showed signs of life could still find lodge
// without a handler and kill it (seen in CI under load).
func forwardSignals() <-chan os.Signal {
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGHUP)
	return signals
}

// execError makes lodge exit with 125 when exec fails before the command runs,
// so that scripts can tell lodge's failures from the command's own statuses.
type execError struct{ err error }

func (e execError) Error() string { return e.err.Error() }
func (e execError) Unwrap() error { return e.err }

func execFailed(err error) error { return execError{err} }
