package templates

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"lodge/internal/atomicfile"
)

// Images is the image cache: root filesystems with natural ids (0..65535) on
// disk, built from templates or imported from tarballs, that containers are
// copied from.
//
//	DIR/ID/rootfs      the root filesystem
//	DIR/ID/image.json  what it is (Image)
//	DIR/ID/build.log   the build log of a template image
//	DIR/ID.lock        exists while the image is built or changed
//	DIR/.ID.tmp-PID    an image being built or imported
//
// DIR is root-only (0700), and so is every image and staging directory in
// it: a root filesystem's files have host ids (uid 0 in the image is host uid
// 0), so a setuid-root program in an image would run as root for any host
// user who could reach it. Directories an older lodge made traversable are
// made private again when next used.
type Images struct {
	Dir string
}

// Image describes one cached image.
type Image struct {
	ID       string            `json:"id" yaml:"id"`
	Aliases  []string          `json:"aliases,omitempty" yaml:"aliases,omitempty"`
	Template string            `json:"template,omitempty" yaml:"template,omitempty"` // built from this template
	Options  map[string]string `json:"options,omitempty" yaml:"options,omitempty"`
	Source   string            `json:"source,omitempty" yaml:"source,omitempty"` // imported from this file
	Created  time.Time         `json:"created" yaml:"created"`
	Size     int64             `json:"size" yaml:"size"` // bytes of file data in the root filesystem
	// Changes says what lodge changed in the files to keep them harmless on
	// the host (see sanitize.go), one sentence each; Checked is the revision
	// of those rules the files were checked against.
	Changes []string `json:"changes,omitempty" yaml:"changes,omitempty"`
	Checked int      `json:"checked,omitempty" yaml:"checked,omitempty"`
}

// Errors callers branch on.
var (
	ErrImageNotFound = errors.New("image not found")
	ErrImageExists   = errors.New("already exists")
	ErrBadName       = errors.New("bad name") // an alias or file name lodge cannot use
)

// Rootfs is the root filesystem of image id.
func (s *Images) Rootfs(id string) string { return filepath.Join(s.Dir, id, "rootfs") }

func (s *Images) metaPath(id string) string { return filepath.Join(s.Dir, id, "image.json") }

// LogPath is the build log of image id.
func (s *Images) LogPath(id string) string { return filepath.Join(s.Dir, id, buildLog) }

// buildLog is the build log's name in an image's (or a build's staging) directory.
const buildLog = "build.log"

// legacyLogPath is where lodge kept build logs before they moved into the image.
func (s *Images) legacyLogPath(id string) string { return filepath.Join(s.Dir, id+".log") }

// List returns the images, sorted by id.
func (s *Images) List() ([]Image, error) {
	entries, err := os.ReadDir(s.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	var images []Image
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if img, err := s.read(e.Name()); err == nil {
			images = append(images, img)
		}
	}
	sort.Slice(images, func(i, j int) bool { return images[i].ID < images[j].ID })
	return images, nil
}

// Lookup finds an image by id or alias.
func (s *Images) Lookup(name string) (Image, error) {
	images, err := s.List()
	if err != nil {
		return Image{}, err
	}
	for _, img := range images {
		if img.ID == name || slices.Contains(img.Aliases, name) {
			return img, nil
		}
	}
	return Image{}, fmt.Errorf("image %q: %w (see: lodge image list)", name, ErrImageNotFound)
}

func (s *Images) read(id string) (Image, error) {
	data, err := os.ReadFile(s.metaPath(id))
	if err != nil {
		return Image{}, err
	}
	var img Image
	if err := json.Unmarshal(data, &img); err != nil {
		return Image{}, fmt.Errorf("%s is corrupt: %w", s.metaPath(id), err)
	}
	return img, nil
}

// TemplateImageID names the cached image of template t with options: readable,
// and different whenever the options or the template's revision differ.
func TemplateImageID(t Template, options map[string]string) string {
	keys := make([]string, 0, len(options))
	for k := range options {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d", t.Name, t.Revision)
	for _, k := range keys {
		fmt.Fprintf(h, "\x00%s=%s", k, options[k])
	}
	label := t.Name
	if r := options["release"]; validWord(r) { // never a path: see checkID
		label += "-" + r
	}
	return label + "-" + hex.EncodeToString(h.Sum(nil))[:12]
}

// Ensure returns the cached image of template t with options, building it
// first if it is missing or refresh is set. Concurrent calls for one image
// build it once: the others wait for the build and use it.
func (s *Images) Ensure(ctx context.Context, t Template, options map[string]string, refresh bool, report Reporter) (Image, error) {
	id := TemplateImageID(t, options)
	unlock, err := s.lock(ctx, id, report)
	if err != nil {
		return Image{}, err
	}
	defer unlock()
	if img, err := s.read(id); err == nil && !refresh {
		return s.recheck(img, report)
	}
	if err := s.build(ctx, id, t, options, report); err != nil {
		return Image{}, err
	}
	return s.read(id)
}

// Use returns image name (id or alias) for a new container, first checking
// an image made by an older lodge against today's rules.
func (s *Images) Use(ctx context.Context, name string, report Reporter) (Image, error) {
	img, err := s.Lookup(name)
	if err != nil {
		return Image{}, err
	}
	unlock, err := s.lock(ctx, img.ID, report)
	if err != nil {
		return Image{}, err
	}
	defer unlock()
	if img, err = s.read(img.ID); err != nil {
		return Image{}, fmt.Errorf("image %s: %w", name, err)
	}
	return s.recheck(img, report)
}

// recheck brings an image made by an older lodge up to today's rules: its
// directory private, no device nodes, no setuid for ids outside the
// container's range. The caller holds the image's lock.
func (s *Images) recheck(img Image, report Reporter) (Image, error) {
	if err := makePrivate(filepath.Join(s.Dir, img.ID)); err != nil {
		return Image{}, err
	}
	if img.Checked >= sanitizeVersion {
		return img, nil
	}
	changes, err := sanitizeTree(s.Rootfs(img.ID))
	if err != nil {
		return Image{}, fmt.Errorf("check image %s: %w", img.ID, err)
	}
	img.Changes, img.Checked = append(img.Changes, changes.Lines()...), sanitizeVersion
	for _, line := range changes.Lines() {
		report.Step("image %s (made by an older lodge): %s", img.ID, line)
	}
	return img, s.writeMeta(img)
}

// build makes image id in a private staging directory, its log beside the
// root filesystem, and moves both into place. A failed build leaves nothing:
// the end of its log is shown and goes with the staging directory.
func (s *Images) build(ctx context.Context, id string, t Template, options map[string]string, report Reporter) error {
	tmp, err := s.tempDir(id)
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	logPath := filepath.Join(tmp, buildLog)
	report.Step("building image %s from template %s (log: %s)", id, t.Name, logPath)
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	rootfs := filepath.Join(tmp, "rootfs")
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		return err
	}
	b := Build{Rootfs: rootfs, Options: options, Log: logFile, Report: report}
	if err := t.Build(ctx, b); err != nil {
		return buildError(id, err, logPath, report)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	changes, err := sanitizeTree(rootfs)
	if err != nil {
		return fmt.Errorf("build image %s: %w", id, err)
	}
	for _, line := range changes.Lines() {
		fmt.Fprintf(logFile, "lodge: %s\n", line)
	}
	img := Image{ID: id, Template: t.Name, Options: options, Created: time.Now().UTC().Truncate(time.Second),
		Size: treeSize(rootfs), Changes: changes.Lines(), Checked: sanitizeVersion}
	return s.install(tmp, img)
}

// buildError shows the last lines of a failed build's log, which is about to
// be removed, and names the last error line in the error itself.
func buildError(id string, err error, logPath string, report Reporter) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	tail := logTail(logPath, 10)
	if len(tail) > 0 {
		report.Step("the build log of image %s ended with:", id)
		for _, line := range tail {
			report.Step("  %s", line)
		}
	}
	for i := len(tail) - 1; i >= 0; i-- {
		if strings.HasPrefix(tail[i], "E: ") {
			return fmt.Errorf("build image %s: %w: %s", id, err, strings.TrimPrefix(tail[i], "E: "))
		}
	}
	return fmt.Errorf("build image %s: %w", id, err)
}

// logTail returns the last n non-empty lines of a log file.
func logTail(path string, n int) []string {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var lines []string
	for _, line := range strings.Split(string(data), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			lines = append(lines, line)
		}
	}
	return lines[max(0, len(lines)-n):]
}

// install writes the image's description into dir and moves dir into place,
// replacing an older image of the same id.
func (s *Images) install(dir string, img Image) error {
	data, err := jsonIndent(img)
	if err != nil {
		return err
	}
	// The tree's files reach the disk before image.json (durable itself)
	// and the rename declare the image complete: after a crash the cache
	// holds a whole image or none.
	if err := atomicfile.SyncFS(dir); err != nil {
		return fmt.Errorf("install image %s: %w", img.ID, err)
	}
	if err := atomicfile.Write(filepath.Join(dir, "image.json"), data, 0o644); err != nil {
		return err
	}
	os.Remove(s.legacyLogPath(img.ID))
	final := filepath.Join(s.Dir, img.ID)
	old := ""
	if _, err := os.Stat(final); err == nil {
		old = filepath.Join(s.Dir, "."+img.ID+".old-"+strconv.Itoa(os.Getpid()))
		if err := os.Rename(final, old); err != nil {
			return err
		}
	}
	if err := os.Rename(dir, final); err != nil {
		return err
	}
	if err := atomicfile.SyncDir(s.Dir); err != nil {
		return err
	}
	if old != "" {
		return os.RemoveAll(old)
	}
	return nil
}

// tempDir makes a fresh, private DIR/.ID.tmp-PID, removing ones left by
// builds that were killed (the caller holds the image's lock, so none is in
// use). It is private before anything is unpacked or built in it.
func (s *Images) tempDir(id string) (string, error) {
	if err := s.prepareDir(); err != nil {
		return "", err
	}
	stale, _ := filepath.Glob(filepath.Join(s.Dir, "."+id+".tmp-*"))
	for _, dir := range stale {
		os.RemoveAll(dir)
	}
	dir := filepath.Join(s.Dir, "."+id+".tmp-"+strconv.Itoa(os.Getpid()))
	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", err
	}
	return dir, makePrivate(dir) // in case one of the same name survived
}

// prepareDir makes the image cache directory, root-only.
func (s *Images) prepareDir() error {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return fmt.Errorf("image cache %s: %w", s.Dir, err)
	}
	if err := makePrivate(s.Dir); err != nil {
		return fmt.Errorf("image cache %s: %w", s.Dir, err)
	}
	return nil
}

// makePrivate takes group and other permissions off a directory (made by an
// older lodge, or by hand); a missing one is left missing. A symlink (an
// images.dir moved elsewhere by root) is followed.
func makePrivate(dir string) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if fi.Mode().Perm()&0o077 == 0 {
		return nil
	}
	return os.Chmod(dir, fi.Mode().Perm()&0o700)
}

// Delete removes an image by id or alias.
func (s *Images) Delete(ctx context.Context, name string) error {
	img, err := s.Lookup(name)
	if err != nil {
		return err
	}
	unlock, err := s.lock(ctx, img.ID, Silent{})
	if err != nil {
		return err
	}
	defer unlock()
	trash := filepath.Join(s.Dir, "."+img.ID+".delete-"+strconv.Itoa(os.Getpid()))
	if err := os.Rename(filepath.Join(s.Dir, img.ID), trash); err != nil {
		return fmt.Errorf("delete image %s: %w", img.ID, err)
	}
	os.Remove(s.legacyLogPath(img.ID))
	return os.RemoveAll(trash)
}

// treeSize adds up the sizes of the regular files under dir.
func treeSize(dir string) int64 {
	var total int64
	filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				total += info.Size()
			}
		}
		return nil
	})
	return total
}

func jsonIndent(v any) ([]byte, error) { return json.MarshalIndent(v, "", "  ") }

// writeMeta rewrites an installed image's description.
func (s *Images) writeMeta(img Image) error {
	data, err := jsonIndent(img)
	if err != nil {
		return err
	}
	return atomicfile.Write(s.metaPath(img.ID), data, 0o644)
}
