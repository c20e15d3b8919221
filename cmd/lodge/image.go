package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"lodge/templates"
)

func newImageCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Manage images: template builds and imported root filesystems",
	}
	cmd.AddCommand(newImageListCmd(a), newImageImportCmd(a), newImageExportCmd(a), newImageDeleteCmd(a))
	return cmd
}

func newImageListCmd(a *app) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:     "list [--format table|json|yaml]",
		Aliases: []string{"ls"},
		Short:   "List cached template images and imported images",
		Args:    exactArgs(0, "no arguments"),
		RunE: func(*cobra.Command, []string) error {
			if err := checkFormatIn(format, "table", "json", "yaml"); err != nil {
				return err
			}
			m, err := a.manager()
			if err != nil {
				return err
			}
			images, err := m.Images()
			if err != nil {
				return err
			}
			return printImages(a.stdout, format, images)
		},
	}
	cmd.Flags().StringVar(&format, "format", "table", "output format: table, json or yaml")
	return cmd
}

func printImages(w io.Writer, format string, images []templates.Image) error {
	switch format {
	case "json":
		if images == nil {
			images = []templates.Image{}
		}
		return writeJSON(w, images)
	case "yaml":
		return yaml.NewEncoder(w).Encode(images)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "ID\tALIASES\tSOURCE\tSIZE\tCREATED")
	for _, img := range images {
		source := img.Source
		if img.Template != "" && source == "" {
			source = "template " + img.Template + " " + optionWords(img.Options)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", img.ID, dashIfEmpty(strings.Join(img.Aliases, ",")), source,
			humanSize(img.Size), img.Created.Local().Format("2006-01-02 15:04"))
	}
	return tw.Flush()
}

func optionWords(opts map[string]string) string {
	var words []string
	for _, k := range []string{"release", "init", "variant", "packages"} {
		if v := opts[k]; v != "" {
			words = append(words, k+"="+v)
		}
	}
	return strings.Join(words, " ")
}

func humanSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d KiB", n>>10)
}

func newImageImportCmd(a *app) *cobra.Command {
	var alias string
	cmd := &cobra.Command{
		Use:   "import FILE.tar[.gz|.xz|.zst] --alias NAME",
		Short: "Import a root filesystem tarball as an image",
		Long: `Import a root filesystem tarball as an image. The tarball holds the root filesystem
itself (as made by lodge image export or tar -C rootfs -c .), or an LXC/Incus image's
rootfs/ directory beside metadata.yaml. Files keep their numeric owners (0..65535,
the ids a container maps), and lodge keeps the image harmless on the host:
  - device nodes are removed (a container's /dev is a tmpfs lodge fills itself);
  - files owned by a uid or gid above 65535 go to 65534 (nobody, nogroup), as a
    container would show them, and lose their setuid or setgid bit;
  - setuid and setgid bits of owners in 0..65535 stay (passwd works inside);
  - members whose names leave the root (../) or pass through a symlink made by
    an earlier member are skipped, and trusted.* xattrs (the host kernel's) dropped.
What changed is printed and kept in the image (lodge image list --format yaml).
Images are readable by root only.`,
		Args: exactArgs(1, "a tarball"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if alias == "" {
				return usageError{"image import needs --alias NAME"}
			}
			m, err := a.manager()
			if err != nil {
				return err
			}
			ctx, stop := interruptible(cmd.Context())
			defer stop()
			img, err := m.ImportImage(ctx, args[0], alias, a.reporter())
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Imported %s as image %s (%s).\n", args[0], img.ID, strings.Join(img.Aliases, ", "))
			if len(img.Changes) > 0 {
				fmt.Fprintf(a.stdout, "Changed to keep the host safe (see: lodge image import --help):\n")
			}
			for _, line := range img.Changes {
				fmt.Fprintf(a.stdout, "  %s\n", line)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&alias, "alias", "", "name of the new image")
	return cmd
}

func newImageExportCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "export NAME FILE.tar[.gz|.xz|.zst]",
		Short: "Write an image's root filesystem to a tarball (compressed as its name says)",
		Args:  exactArgs(2, "an image and a file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := a.manager()
			if err != nil {
				return err
			}
			ctx, stop := interruptible(cmd.Context())
			defer stop()
			if err := m.ExportImage(ctx, args[0], args[1], a.reporter()); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Exported image %s to %s.\n", args[0], args[1])
			return nil
		},
	}
}

func newImageDeleteCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "delete NAME",
		Aliases: []string{"rm"},
		Short:   "Delete an image (containers made from it are copies and stay)",
		Args:    exactArgs(1, "an image id or alias"),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := a.manager()
			if err != nil {
				return err
			}
			return m.DeleteImage(cmd.Context(), args[0])
		},
	}
}
