package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"lodge/manager"
	"lodge/templates"
)

type createOptions struct {
	template string
	image    string
	refresh  bool
	options  []string // template options, KEY=VALUE
	config   []string // -c key=value
}

func newCreateCmd(a *app) *cobra.Command {
	var opts createOptions
	cmd := &cobra.Command{
		Use:   "create NAME (--template TEMPLATE [-o option=value]... | --image IMAGE) [-c key=value]...",
		Short: "Create a container from a template or an image",
		Long: `Create a container. A template's root filesystem is built once into the image
cache (with progress, and a log) and copied from there by later creates; --refresh
rebuilds it. Templates and their options:
` + templateHelp(),
		Example: `  lodge create web1 --template debian
  lodge create old --template debian -o release=trixie -o init=sysvinit
  lodge create tiny --template busybox -c limits.memory=64MiB -c limits.cpuset=0
  lodge create copy1 --image my-image`,
		Args: exactArgs(1, "a container name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCreate(cmd, a, args[0], opts)
		},
	}
	cmd.Flags().StringVarP(&opts.template, "template", "t", "", "template to build the root filesystem from (debian, busybox)")
	cmd.Flags().StringVar(&opts.image, "image", "", "image (id or alias, see lodge image list) to copy the root filesystem from")
	cmd.Flags().BoolVar(&opts.refresh, "refresh", false, "rebuild the template's cached image first")
	cmd.Flags().StringArrayVarP(&opts.options, "option", "o", nil, "template option KEY=VALUE (repeatable)")
	cmd.Flags().StringArrayVarP(&opts.config, "config", "c", nil, "configuration key=value (repeatable; see README: Configuration keys)")
	return cmd
}

func runCreate(cmd *cobra.Command, a *app, name string, opts createOptions) error {
	if opts.template == "" && opts.image == "" {
		return usageError{"create needs --template (debian, busybox) or --image"}
	}
	tmplOpts, err := parseKeyValues(opts.options, "--option")
	if err != nil {
		return err
	}
	m, err := a.manager()
	if err != nil {
		return err
	}
	// Ctrl-C cancels the build, which then removes everything it made.
	ctx, stop := interruptible(cmd.Context())
	defer stop()
	err = m.Create(ctx, manager.CreateOptions{
		Name: name, Template: opts.template, Image: opts.image, TemplateOptions: tmplOpts,
		Refresh: opts.refresh, Config: opts.config, Report: a.reporter(),
	})
	if err != nil {
		return err
	}
	from := "template " + opts.template
	if opts.image != "" {
		from = "image " + opts.image
	}
	fmt.Fprintf(a.stdout, "Created %s from %s.\n", name, from)
	return nil
}

func parseKeyValues(entries []string, flag string) (map[string]string, error) {
	out := map[string]string{}
	for _, e := range entries {
		k, v, ok := strings.Cut(e, "=")
		if !ok || k == "" {
			return nil, usageError{fmt.Sprintf("%s %q: use KEY=VALUE", flag, e)}
		}
		out[k] = v
	}
	return out, nil
}

func newStartCmd(a *app) *cobra.Command {
	var fresh bool
	cmd := &cobra.Command{
		Use:   "start [REMOTE:]NAME [--fresh]",
		Short: "Boot a container; returns once its init runs (systemd: once it takes requests)",
		Long: `Boot a container; returns once its init runs (systemd: once it takes requests).
After a stateful stop (lodge stop --stateful) the container is resumed from the
checkpoint it left instead, and start says so; --fresh boots it anyway (the
checkpoint stays).`,
		Args:              exactArgs(1, "a container name"),
		ValidArgsFunction: completeNames(a),
		RunE: func(cmd *cobra.Command, args []string) error {
			if remote, name, ok := splitRemote(args[0]); ok {
				return remoteStart(cmd.Context(), a, remote, name, fresh)
			}
			m, err := a.manager()
			if err != nil {
				return err
			}
			if fresh {
				return m.StartFresh(cmd.Context(), args[0], a.progress)
			}
			return m.Start(cmd.Context(), args[0], a.progress)
		},
	}
	cmd.Flags().BoolVar(&fresh, "fresh", false, "boot, even after a stateful stop (do not resume its checkpoint)")
	return cmd
}

type stopFlags struct {
	timeout string
	force   bool
}

func (f *stopFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.timeout, "timeout", "", "grace period before the container is killed, e.g. 30s or 30 (default: init.stop_timeout)")
	cmd.Flags().BoolVarP(&f.force, "force", "f", false, "kill the container at once")
}

func (f *stopFlags) options() (manager.StopOptions, error) {
	opts := manager.StopOptions{Force: f.force}
	if f.timeout == "" {
		return opts, nil
	}
	d, err := parseTimeout(f.timeout)
	if err != nil {
		return opts, err
	}
	opts.Timeout = d
	return opts, nil
}

// parseTimeout accepts a Go duration ("1m30s") or plain seconds ("90").
func parseTimeout(s string) (time.Duration, error) {
	if secs, err := strconv.ParseFloat(s, 64); err == nil && secs > 0 {
		return time.Duration(secs * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, usageError{fmt.Sprintf("--timeout %q: use a positive duration like 30s, 2m or a number of seconds", s)}
	}
	return d, nil
}

func newStopCmd(a *app) *cobra.Command {
	var flags stopFlags
	var stateful bool
	cmd := &cobra.Command{
		Use:               "stop [REMOTE:]NAME [--timeout DURATION] [--force] [--stateful]",
		Short:             "Shut a container down gracefully, killing it after the timeout",
		Args:              exactArgs(1, "a container name"),
		ValidArgsFunction: completeNames(a),
		RunE: func(cmd *cobra.Command, args []string) error {
			if remote, name, ok := splitRemote(args[0]); ok {
				return remoteStop(cmd.Context(), a, remote, name, flags, stateful)
			}
			if stateful {
				if flags.force || flags.timeout != "" {
					return usageError{"--stateful takes neither --force nor --timeout: the container's processes are saved, not stopped"}
				}
				m, err := a.manager()
				if err != nil {
					return err
				}
				res, err := m.Checkpoint(cmd.Context(), args[0], manager.CheckpointOptions{Stop: true, Resume: true})
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "Stopped %s with its processes saved in %s (%d ms); lodge start %s resumes them.\n", args[0], res.Dir, res.Millis, args[0])
				return nil
			}
			opts, err := flags.options()
			if err != nil {
				return err
			}
			m, err := a.manager()
			if err != nil {
				return err
			}
			res, err := m.Stop(cmd.Context(), args[0], opts)
			if err == nil && res.Killed && !opts.Force {
				fmt.Fprintf(a.stderr, "lodge: %s did not shut down within its timeout and was killed\n", args[0])
			}
			return err
		},
	}
	flags.register(cmd)
	cmd.Flags().BoolVar(&stateful, "stateful", false, "save the processes in a checkpoint (CRIU) that the next lodge start resumes")
	return cmd
}

func newRestartCmd(a *app) *cobra.Command {
	var flags stopFlags
	cmd := &cobra.Command{
		Use:               "restart NAME [--timeout DURATION] [--force]",
		Short:             "Stop a container (if it runs) and start it again",
		Args:              exactArgs(1, "a container name"),
		ValidArgsFunction: completeNames(a),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := flags.options()
			if err != nil {
				return err
			}
			m, err := a.manager()
			if err != nil {
				return err
			}
			return m.Restart(cmd.Context(), args[0], opts, a.progress)
		},
	}
	flags.register(cmd)
	return cmd
}

func newDeleteCmd(a *app) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:               "delete NAME [--force]",
		Aliases:           []string{"rm"},
		Short:             "Delete a container and everything it holds",
		Args:              exactArgs(1, "a container name"),
		ValidArgsFunction: completeNames(a),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := a.manager()
			if err != nil {
				return err
			}
			return m.Delete(cmd.Context(), args[0], force)
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "stop a running container at once, then delete it; delete it also while others name it in boot.after")
	return cmd
}

func newVersionCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print lodge's version",
		Args:  exactArgs(0, "no arguments"),
		Run: func(*cobra.Command, []string) {
			fmt.Fprintf(a.stdout, "lodge %s\n", version)
		},
	}
}

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// templateHelp lists the templates and their options for create --help.
func templateHelp() string {
	var b strings.Builder
	for _, name := range templates.Default().Names() {
		t, _ := templates.Default().Lookup(name)
		fmt.Fprintf(&b, "\n  %s: %s\n", t.Name, t.Description)
		for _, o := range t.Options {
			fmt.Fprintf(&b, "    -o %s=%s\t%s\n", o.Name, o.Default, o.Doc)
		}
	}
	return b.String()
}

// interruptible cancels ctx on Ctrl-C or SIGTERM, for operations that
// clean up what they made when cancelled (create, image builds, copy,
// snapshot, restore).
func interruptible(ctx context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
}
