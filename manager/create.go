package manager

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"lodge/config"
	"lodge/manager/revert"
	"lodge/manager/store"
	"lodge/templates"
)

// CreateOptions says how to make a container.
type CreateOptions struct {
	Name            string
	Template        string            // build from this template (through the image cache)...
	Image           string            // ...or copy this cached or imported image (id or alias)
	TemplateOptions map[string]string // options of the template
	Refresh         bool              // rebuild the template's cached image first
	Config          []string          // "key=value" assignments
	Report          templates.Reporter
}

// Create builds a new container. It is all or nothing: the container appears
// under its name only once complete (an atomic rename from ROOT/tmp), and an
// error or Ctrl-C leaves nothing behind.
func (m *Manager) Create(ctx context.Context, opts CreateOptions) error {
	if opts.Report == nil {
		opts.Report = templates.Silent{}
	}
	if err := config.ValidateName(opts.Name); err != nil {
		return invalid(err)
	}
	if m.store.Exists(opts.Name) {
		return m.existsError(opts.Name)
	}
	tmpl, cfg, err := m.prepareCreate(opts)
	if err != nil {
		return err
	}
	if err := m.store.Prepare(); err != nil {
		return err
	}
	m.sweepTmp()
	return m.build(ctx, opts, tmpl, cfg)
}

// sweepTmp removes what killed creates and deletes left in ROOT/tmp: staging
// directories whose creator is dead, and containers already moved out of sight
// for deletion.
func (m *Manager) sweepTmp() {
	entries, err := os.ReadDir(m.store.TmpDir())
	if err != nil {
		return
	}
	for _, e := range entries {
		dir := filepath.Join(m.store.TmpDir(), e.Name())
		switch {
		case strings.HasSuffix(e.Name(), ".create"):
			if abandoned(dir) {
				removeTree(dir)
			}
		case strings.Contains(e.Name(), ".delete-"):
			removeTree(dir)
		}
	}
}

func (m *Manager) existsError(name string) error {
	return fmt.Errorf("container %q %w; pick another name or remove it: lodge delete %s", name, ErrExists, name)
}

// prepareCreate checks the template and the configuration before any work.
func (m *Manager) prepareCreate(opts CreateOptions) (templates.Template, *config.Container, error) {
	tmpl, source, err := m.resolveSource(opts)
	if err != nil {
		return tmpl, nil, err
	}
	cfg, err := m.host.DefaultContainer()
	if err != nil {
		return tmpl, nil, invalid(fmt.Errorf("%s: %w", config.HostConfigPath(), err))
	}
	cfg.Source = source
	if err := applyAssignments(cfg, opts.Config, "-c"); err != nil {
		return tmpl, nil, err
	}
	if err := cfg.ValidateOn(hostFacts()); err != nil {
		return tmpl, nil, invalid(err)
	}
	return tmpl, cfg, nil
}

// resolveSource checks what the container is made from: a template and its
// options, or an image.
func (m *Manager) resolveSource(opts CreateOptions) (templates.Template, config.Source, error) {
	created := time.Now().UTC().Truncate(time.Second)
	switch {
	case opts.Image != "" && opts.Template != "":
		return templates.Template{}, config.Source{}, invalid(errors.New("create takes --template or --image, not both"))
	case opts.Image != "":
		if len(opts.TemplateOptions) > 0 || opts.Refresh {
			return templates.Template{}, config.Source{}, invalid(errors.New("--option and --refresh apply to templates, not to --image"))
		}
		img, err := m.images().Lookup(opts.Image)
		if err != nil {
			return templates.Template{}, config.Source{}, invalid(err)
		}
		tmpl := templates.Template{Name: img.Template, Configure: templates.ConfigureHostname}
		return tmpl, config.Source{Image: opts.Image, Template: img.Template, Options: img.Options, Created: created}, nil
	}
	tmpl, err := m.templates.Lookup(opts.Template)
	if err != nil {
		return tmpl, config.Source{}, invalid(err)
	}
	options, err := tmpl.ResolveOptions(opts.TemplateOptions, m.host.Templates[tmpl.Name])
	if err != nil {
		return tmpl, config.Source{}, invalid(err)
	}
	return tmpl, config.Source{Template: tmpl.Name, Options: options, Created: created}, nil
}

func applyAssignments(cfg *config.Container, assignments []string, origin string) error {
	for _, a := range assignments {
		key, value, err := config.ParseAssignment(a)
		if err == nil {
			err = cfg.Set(key, value)
		}
		if err != nil {
			return invalid(fmt.Errorf("%s %s: %w", origin, a, err))
		}
	}
	return nil
}

// build makes the container in a staging directory and moves it into place.
func (m *Manager) build(ctx context.Context, opts CreateOptions, tmpl templates.Template, cfg *config.Container) error {
	r := revert.New()
	defer r.Fail()
	staging, err := m.reserveStaging(opts.Name)
	if err != nil {
		return err
	}
	r.Add(func() { os.RemoveAll(staging) })
	if err := m.buildRootfs(ctx, staging, opts, tmpl, cfg); err != nil {
		return err
	}
	if err := cfg.Save(filepath.Join(staging, "config.toml")); err != nil {
		return err
	}
	if err := m.allocateRange(opts.Name, r); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("create %s: %w", opts.Name, err)
	}
	if err := os.Remove(filepath.Join(staging, ownerFile)); err != nil {
		return err
	}
	if err := unix.Renameat2(unix.AT_FDCWD, staging, unix.AT_FDCWD, m.store.ContainerDir(opts.Name), unix.RENAME_NOREPLACE); err != nil {
		if errors.Is(err, unix.EEXIST) || errors.Is(err, unix.ENOTEMPTY) {
			return m.existsError(opts.Name)
		}
		return fmt.Errorf("move new container into place: %w", err)
	}
	r.Success()
	return nil
}

// buildRootfs copies the container's root filesystem from its image, building
// the template's image first if the cache lacks it.
func (m *Manager) buildRootfs(ctx context.Context, staging string, opts CreateOptions, tmpl templates.Template, cfg *config.Container) error {
	if err := os.Mkdir(filepath.Join(staging, "log"), 0o700); err != nil {
		return err
	}
	img, err := m.imageFor(ctx, opts, tmpl, cfg)
	if err != nil {
		return err
	}
	rootfsDir := filepath.Join(staging, "rootfs")
	opts.Report.Step("copying the root filesystem from image %s", img.ID)
	if err := templates.CopyRootfs(ctx, m.images().Rootfs(img.ID), rootfsDir); err != nil {
		return err
	}
	if err := tmpl.Configure(rootfsDir, opts.Name); err != nil {
		return fmt.Errorf("configure root filesystem: %w", err)
	}
	return nil
}

func (m *Manager) imageFor(ctx context.Context, opts CreateOptions, tmpl templates.Template, cfg *config.Container) (templates.Image, error) {
	if opts.Image != "" {
		return m.images().Use(ctx, opts.Image, opts.Report)
	}
	return m.images().Ensure(ctx, tmpl, cfg.Source.Options, opts.Refresh, opts.Report)
}

// allocateRange gives the container its id range. A range already recorded for
// this name is the leftover of a create that was killed between allocating and
// moving into place: this create holds the name's staging reservation, so it
// takes that range over.
func (m *Manager) allocateRange(name string, r *revert.Reverter) error {
	alloc := m.allocator()
	if _, ok, err := alloc.Lookup(name); err != nil {
		return err
	} else if ok {
		r.Add(func() { alloc.Release(name) })
		return nil
	}
	if _, err := alloc.Allocate(name); err != nil {
		return err
	}
	r.Add(func() { alloc.Release(name) })
	return nil
}

// ownerFile in a staging directory names the process that builds it, so a
// staging directory whose creator was killed can be told from a live one.
const ownerFile = ".owner"

// reserveStaging makes ROOT/tmp/NAME.create. Its fixed name reserves the
// container name: two creates of one name cannot run at once.
func (m *Manager) reserveStaging(name string) (string, error) {
	dir := filepath.Join(m.store.TmpDir(), name+".create")
	for attempt := 0; attempt < 2; attempt++ {
		err := os.Mkdir(dir, 0o700)
		if err == nil {
			self, err := store.ProcessOf(os.Getpid())
			if err != nil {
				return "", err
			}
			return dir, writeOwner(dir, self)
		}
		if !errors.Is(err, os.ErrExist) {
			return "", fmt.Errorf("reserve %s: %w", dir, err)
		}
		if !abandoned(dir) {
			return "", fmt.Errorf("container %q is being created by another lodge; wait for it: %w", name, ErrExists)
		}
		// Left behind by a create that was killed: clear it and try again.
		if err := removeTree(dir); err != nil {
			return "", err
		}
	}
	return "", fmt.Errorf("reserve %s: it keeps reappearing", dir)
}

// abandoned reports whether a staging directory's creator is gone. A directory
// without an owner file yet may belong to a create that has just made it, so
// only an old one counts as abandoned.
func abandoned(dir string) bool {
	if owner, ok := readOwner(dir); ok {
		return !owner.Alive()
	}
	fi, err := os.Stat(dir)
	return err == nil && time.Since(fi.ModTime()) > 10*time.Minute
}

func writeOwner(dir string, p store.Process) error {
	text := fmt.Sprintf("%d %d\n", p.PID, p.Start)
	return os.WriteFile(filepath.Join(dir, ownerFile), []byte(text), 0o600)
}

func readOwner(dir string) (store.Process, bool) {
	data, err := os.ReadFile(filepath.Join(dir, ownerFile))
	if err != nil {
		return store.Process{}, false
	}
	fields := strings.Fields(string(data))
	if len(fields) != 2 {
		return store.Process{}, false
	}
	pid, err1 := strconv.Atoi(fields[0])
	start, err2 := strconv.ParseUint(fields[1], 10, 64)
	if err1 != nil || err2 != nil {
		return store.Process{}, false
	}
	return store.Process{PID: pid, Start: start}, true
}

// removeTree deletes a directory tree, refusing if anything is mounted inside
// it: RemoveAll would otherwise delete files on the mounted filesystem.
func removeTree(dir string) error {
	mounts, err := mountsUnder(dir)
	if err != nil {
		return err
	}
	if len(mounts) > 0 {
		return fmt.Errorf("refusing to remove %s: %s is mounted inside it; unmount it first", dir, mounts[0])
	}
	return os.RemoveAll(dir)
}

func mountsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	var found []string
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountPath(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			found = append(found, mp)
		}
	}
	return found, nil
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
