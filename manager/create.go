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
	"lodge/internal/events"
	"lodge/internal/revert"
	"lodge/internal/store"
	"lodge/storage"
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
	if err := m.nameFree(opts.Name); err != nil {
		return err
	}
	tmpl, cfg, err := m.prepareCreate(ctx, opts)
	if err != nil {
		return err
	}
	// The networks' lock is not held through the build: two creates at once
	// could both take one static address (config set cannot).
	unlockNetworks, err := m.prepareNICs(ctx, opts.Name, cfg)
	if err != nil {
		return err
	}
	unlockNetworks()
	if err := m.store.Prepare(); err != nil {
		return err
	}
	m.sweepTmp()
	if err := m.build(ctx, opts, tmpl, cfg); err != nil {
		return err
	}
	m.emit(opts.Name, events.Event{Type: events.Created, Reason: opts.Template + opts.Image})
	return nil
}

// sweepTmp removes what killed creates and deletes left in ROOT/tmp: staging
// directories whose creator is dead (their lock is free), and containers
// already moved out of sight for deletion.
func (m *Manager) sweepTmp() {
	entries, err := os.ReadDir(m.store.TmpDir())
	if err != nil {
		return
	}
	for _, e := range entries {
		dir := filepath.Join(m.store.TmpDir(), e.Name())
		switch {
		case strings.HasSuffix(e.Name(), ".create"):
			clearAbandoned(dir)
		case strings.HasPrefix(e.Name(), reservingPrefix):
			// Not locked yet for a moment after it is made; it blocks no
			// name, so only an old one is cleared, or one whose creator
			// wrote its owner (after locking) and is dead: a create killed
			// before its rename (fast with overlay storage).
			owner, named := readOwner(dir)
			if !named {
				owner, named = reservingCreator(e.Name())
			}
			if fi, err := e.Info(); err == nil && (time.Since(fi.ModTime()) > time.Minute || named && !owner.Alive()) {
				clearAbandoned(dir)
			}
		case strings.Contains(e.Name(), ".delete-"):
			removeTree(dir)
		}
	}
}

// nameFree checks that no container has name, in any letter case: names
// are host names, and Web next to web would be confusing at best.
func (m *Manager) nameFree(name string) error {
	names, err := m.store.Names()
	if err != nil {
		return err
	}
	for _, other := range names {
		if other == name {
			return m.existsError(name)
		}
		if strings.EqualFold(other, name) {
			return fmt.Errorf("container %q %w; names are unique regardless of letter case: pick another name or remove it: lodge delete %s",
				other, ErrExists, other)
		}
	}
	return nil
}

func (m *Manager) existsError(name string) error {
	return fmt.Errorf("container %q %w; pick another name or remove it: lodge delete %s", name, ErrExists, name)
}

// prepareCreate checks the template and the configuration before any work.
func (m *Manager) prepareCreate(ctx context.Context, opts CreateOptions) (templates.Template, *config.Container, error) {
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
	if err := cfg.ValidateOn(m.hostFacts()); err != nil {
		return tmpl, nil, invalid(err)
	}
	// The lock need not be held until the container appears: until then no
	// other list can name it but one that named it already, which the
	// check sees.
	unlockBootOrder, err := m.checkBootAfter(ctx, opts.Name, nil, cfg)
	if err != nil {
		return tmpl, nil, err
	}
	unlockBootOrder()
	if cfg.Limits.Disk > 0 {
		if err := m.checkNewDiskLimit(cfg.Limits.Disk); err != nil {
			return tmpl, nil, err
		}
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
	var all []config.Assignment
	for _, a := range assignments {
		key, value, err := config.ParseAssignment(a)
		if err != nil {
			return invalid(fmt.Errorf("%s %s: %w", origin, a, err))
		}
		all = append(all, config.Assignment{Key: key, Value: value})
	}
	if err := cfg.SetAll(all); err != nil {
		return invalid(fmt.Errorf("%s: %w", origin, err))
	}
	return nil
}

// build makes the container in a staging directory and moves it into place.
func (m *Manager) build(ctx context.Context, opts CreateOptions, tmpl templates.Template, cfg *config.Container) error {
	res, err := m.reserve(opts.Name)
	if err != nil {
		return err
	}
	// Released last: a failed create removes its staging directory while it
	// still holds the reservation, never one another create has taken since.
	defer res.release()
	r := revert.New()
	defer r.Fail()
	staging := res.dir
	r.Add(func() { os.RemoveAll(staging) })
	// Checked again under the reservation: a create of the same name in
	// another letter case may have finished meanwhile.
	if err := m.nameFree(opts.Name); err != nil {
		return err
	}
	if err := m.buildRootfs(ctx, staging, opts, tmpl, cfg); err != nil {
		return err
	}
	if err := cfg.Save(filepath.Join(staging, "config.toml")); err != nil {
		return err
	}
	if cfg.Limits.Disk > 0 {
		if err := m.setDiskLimit(ctx, staging, cfg.Limits.Disk); err != nil {
			return err
		}
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
	backend, err := m.newStorage()
	if err != nil {
		return err
	}
	opts.Report.Step("making the root filesystem from image %s (%s storage)", img.ID, backend.Name())
	if err := backend.Create(ctx, m.images().Rootfs(img.ID), rootfsDir, storage.Options{Progress: copyProgress(opts.Report)}); err != nil {
		return fmt.Errorf("root filesystem of %s: %w", opts.Name, err)
	}
	if err := storage.WriteRecord(staging, storage.Record{Backend: backend.Name(), Image: img.ID}); err != nil {
		return err
	}
	view, err := storage.OpenView(m.store.Root, staging, true)
	if err != nil {
		return err
	}
	defer view.Close()
	if err := tmpl.Configure(view.Dir, opts.Name); err != nil {
		return fmt.Errorf("configure root filesystem: %w", err)
	}
	return nil
}

// newStorage returns the backend new containers get: storage.backend in the
// host config, or the one auto picks for this root.
func (m *Manager) newStorage() (storage.Backend, error) {
	choice, err := storage.Choose(m.host.Storage.Backend, m.store.Root)
	if err != nil {
		return nil, invalid(fmt.Errorf("%s: storage.backend: %w", config.HostConfigPath(), err))
	}
	return storage.New(choice.Backend, m.store.Root)
}

// checkNewDiskLimit refuses limits.disk for a new container before anything
// is built, where the host's backend cannot enforce it.
func (m *Manager) checkNewDiskLimit(limit config.Size) error {
	backend, err := m.newStorage()
	if err != nil {
		return err
	}
	if err := storage.CheckQuota(backend, m.store.Root); err != nil {
		return invalid(fmt.Errorf("limits.disk = %s refused: %w", limit, err))
	}
	return nil
}

// copyProgress reports a copy's progress to r by bytes, at most once per
// percent (the copy reports every file; a terminal needs far fewer lines).
func copyProgress(r templates.Reporter) func(storage.Progress) {
	last := int64(-1)
	return func(p storage.Progress) {
		total, done := max(p.TotalBytes, 1), p.Bytes
		if p.Files == p.TotalFiles {
			done = total
		}
		if pct := done * 100 / total; pct != last {
			last = pct
			r.Progress("copying files", done, total)
		}
	}
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

// ownerFile in a staging directory names the lodge process that builds it,
// for the message a second create of the name gets. Whether the creator still
// runs is the reservation's lock's to say, not this file's.
const ownerFile = ".owner"

// reservingPrefix starts the name of a staging directory not yet moved to
// its reserved name.
const reservingPrefix = ".reserving-"

// reservation is a create's claim on a container name: the staging directory
// ROOT/tmp/NAME.create (NAME in lower case, since names are unique in any
// case), flocked by the creating lodge for as long as it runs. The kernel
// drops the lock when that process dies, however it dies, so a reservation
// whose lock is free is abandoned and the next create clears it at once.
// Children (cp, debootstrap) do not inherit the lock's descriptor (Go opens
// with O_CLOEXEC) and die with lodge (templates.runBound).
type reservation struct {
	dir  string
	lock *os.File
}

func (r *reservation) release() { r.lock.Close() }

// reserve claims name. The staging directory is made and locked under a
// private name, then renamed (never over another) to its reserved name, so a
// reservation is locked from the moment it exists.
func (m *Manager) reserve(name string) (*reservation, error) {
	dir := filepath.Join(m.store.TmpDir(), strings.ToLower(name)+".create")
	// The creator is named in the directory's name from the start, so that
	// a create killed before it wrote its owner file is recognised too.
	self, err := store.ProcessOf(os.Getpid())
	if err != nil {
		return nil, fmt.Errorf("reserve %s: %w", dir, err)
	}
	fresh, err := os.MkdirTemp(m.store.TmpDir(), fmt.Sprintf("%s%s-%d.%d-", reservingPrefix, strings.ToLower(name), self.PID, self.Start))
	if err != nil {
		return nil, fmt.Errorf("reserve %s: %w", dir, err)
	}
	lock, err := lockDir(fresh, unix.LOCK_EX|unix.LOCK_NB)
	if err == nil {
		err = writeOwner(fresh, self)
	}
	if err != nil {
		if lock != nil {
			lock.Close()
		}
		os.RemoveAll(fresh)
		return nil, fmt.Errorf("reserve %s: %w", dir, err)
	}
	for attempt := 0; attempt < 5; attempt++ {
		err = unix.Renameat2(unix.AT_FDCWD, fresh, unix.AT_FDCWD, dir, unix.RENAME_NOREPLACE)
		if err == nil {
			return &reservation{dir: dir, lock: lock}, nil
		}
		if !errors.Is(err, unix.EEXIST) && !errors.Is(err, unix.ENOTEMPTY) {
			break
		}
		// Taken: by a create that runs, or left by one that was killed.
		if busy := clearAbandoned(dir); busy != nil {
			err = busy
			break
		}
	}
	lock.Close()
	os.RemoveAll(fresh)
	if errors.Is(err, ErrExists) {
		return nil, err
	}
	return nil, fmt.Errorf("reserve %s: %w", dir, err)
}

// clearAbandoned removes a reservation whose creator is gone (its lock is
// free), holding the lock meanwhile so that no create can take it half
// removed. It returns an error saying who holds a reservation still in use.
func clearAbandoned(dir string) error {
	lock, err := lockDir(dir, unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return inUseError(dir)
	}
	if err != nil {
		return nil // gone already, or not ours to judge: the rename says
	}
	defer lock.Close()
	// Still the directory we locked (not a new one made meanwhile)?
	var locked, now unix.Stat_t
	if unix.Fstat(int(lock.Fd()), &locked) != nil || unix.Stat(dir, &now) != nil || locked.Ino != now.Ino || locked.Dev != now.Dev {
		return nil
	}
	removeTree(dir)
	return nil
}

// inUseError describes a reservation whose creator still runs.
func inUseError(dir string) error {
	name := strings.TrimSuffix(filepath.Base(dir), ".create")
	if owner, ok := readOwner(dir); ok && owner.Alive() {
		return fmt.Errorf("container %q is being created by another lodge (pid %d); wait for it to finish, or stop it (kill %d) and try again: %w",
			name, owner.PID, owner.PID, ErrExists)
	}
	return fmt.Errorf("container %q is being created by another lodge right now; wait for it to finish: %w", name, ErrExists)
}

// lockDir opens dir and flocks it (how: LOCK_EX, with LOCK_NB or not).
func lockDir(dir string, how int) (*os.File, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// writeOwner records p, the creating lodge, in the reservation dir.
func writeOwner(dir string, p store.Process) error {
	text := fmt.Sprintf("%d %d\n", p.PID, p.Start)
	return os.WriteFile(filepath.Join(dir, ownerFile), []byte(text), 0o600)
}

// reservingCreator reads the creator of a fresh reservation from its name,
// reservingPrefix NAME-PID.START-RANDOM (see reserve).
func reservingCreator(base string) (store.Process, bool) {
	parts := strings.Split(base, "-")
	if len(parts) < 3 {
		return store.Process{}, false
	}
	return parseProcess(strings.Split(parts[len(parts)-2], "."))
}

func readOwner(dir string) (store.Process, bool) {
	data, err := os.ReadFile(filepath.Join(dir, ownerFile))
	if err != nil {
		return store.Process{}, false
	}
	return parseProcess(strings.Fields(string(data)))
}

// parseProcess reads a process recorded as its pid and start time (owner
// files, reservation names).
func parseProcess(fields []string) (store.Process, bool) {
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
