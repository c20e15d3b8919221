package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/spf13/cobra"

	"lodge/config"
	"lodge/internal/terminal"
	"lodge/manager"
)

func newConfigCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Show or change a container's configuration",
	}
	// The key list is rendered only when help is shown, not on every run.
	defaultHelp := cmd.HelpFunc()
	cmd.SetHelpFunc(func(c *cobra.Command, args []string) {
		if c == cmd {
			c.Long = "Show or change a container's configuration.\n\nKeys:\n" + keyList()
		}
		defaultHelp(c, args)
	})
	cmd.AddCommand(newConfigShowCmd(a), newConfigSetCmd(a), newConfigEditCmd(a))
	return cmd
}

func keyList() string {
	var b strings.Builder
	for _, k := range config.Keys() {
		fmt.Fprintf(&b, "  %-20s %s\n", k.Name, k.Doc)
	}
	return b.String()
}

func newConfigShowCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:               "show NAME",
		Short:             "Print the container's config.toml",
		Args:              exactArgs(1, "a container name"),
		ValidArgsFunction: completeNames(a),
		RunE: func(_ *cobra.Command, args []string) error {
			m, err := a.manager()
			if err != nil {
				return err
			}
			text, err := m.ConfigText(args[0])
			if err != nil {
				return err
			}
			_, err = a.stdout.Write(text)
			return err
		},
	}
}

func newConfigSetCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:               "set NAME KEY=VALUE...",
		Short:             "Set configuration keys (an empty value restores the default)",
		Example:           "  lodge config set web1 limits.memory=1GiB limits.cpu=1.5",
		Args:              cobra.MinimumNArgs(2),
		ValidArgsFunction: completeNames(a),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := a.manager()
			if err != nil {
				return err
			}
			res, err := m.ConfigSet(cmd.Context(), args[0], args[1:])
			if err != nil {
				return err
			}
			reportSet(a, args[0], res)
			return nil
		},
	}
}

func reportSet(a *app, name string, res manager.SetResult) {
	if res.AppliedLive {
		fmt.Fprintf(a.stdout, "Saved; limits applied to the running %s (other keys take effect at its next start).\n", name)
	}
}

func newConfigEditCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:               "edit NAME",
		Short:             "Edit the configuration in $VISUAL or $EDITOR; it is checked before it is saved",
		Args:              exactArgs(1, "a container name"),
		ValidArgsFunction: completeNames(a),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := a.manager()
			if err != nil {
				return err
			}
			return editConfig(cmd.Context(), a, m, args[0])
		},
	}
}

// editConfig opens the configuration in an editor until it is valid, unchanged,
// or the user gives up.
func editConfig(ctx context.Context, a *app, m *manager.Manager, name string) error {
	original, err := m.ConfigText(name)
	if err != nil {
		return err
	}
	text := original
	for {
		edited, err := runEditor(a, name, text)
		if err != nil {
			return err
		}
		if bytes.Equal(edited, original) {
			fmt.Fprintln(a.stdout, "No changes.")
			return nil
		}
		res, err := m.ConfigReplace(ctx, name, edited)
		if err == nil {
			reportSet(a, name, res)
			return nil
		}
		if !errors.Is(err, manager.ErrInvalid) || !terminal.IsTerminal(a.stdin) {
			return err
		}
		fmt.Fprintf(a.stderr, "lodge: %v\nEdit again? [Y/n] ", err)
		answer, _ := bufio.NewReader(a.stdin).ReadString('\n')
		if strings.HasPrefix(strings.ToLower(strings.TrimSpace(answer)), "n") {
			return fmt.Errorf("configuration not changed: %w", err)
		}
		text = edited
	}
}

func runEditor(a *app, name string, text []byte) ([]byte, error) {
	f, err := os.CreateTemp("", "lodge-"+name+"-*.toml")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(text); err != nil {
		f.Close()
		return nil, err
	}
	f.Close()
	editor := editorCommand()
	cmd := exec.Command("sh", "-c", editor+` "$1"`, "editor", f.Name())
	cmd.Stdin, cmd.Stdout, cmd.Stderr = a.stdin, a.stdout, a.stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("editor %q failed: %w; nothing was changed", editor, err)
	}
	return os.ReadFile(f.Name())
}

// editorCommand follows the usual order: $VISUAL, $EDITOR, Debian's editor, vi.
func editorCommand() string {
	for _, env := range []string{"VISUAL", "EDITOR"} {
		if v := os.Getenv(env); v != "" {
			return v
		}
	}
	if _, err := exec.LookPath("editor"); err == nil {
		return "editor"
	}
	return "vi"
}
