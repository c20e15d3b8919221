package templates

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Images is the image cache: root filesystems with natural ids (0..65535) on
// disk, built from templates or imported from tarballs, that containers are
// copied from.
//
//	DIR/ID/rootfs      the root filesystem
//	DIR/ID/image.json  what it is (Image)
//	DIR/ID.log         the build log of a template image
//	DIR/ID.lock        taken while the image is built or changed
//	DIR/.ID.tmp-PID    an image being built or imported
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
func (s *Images) LogPath(id string) string { return filepath.Join(s.Dir, id+".log") }

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
	if r := options["release"]; r != "" {
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
		return img, nil
	}
	report.Step("building image %s from template %s (log: %s)", id, t.Name, s.LogPath(id))
	err = s.build(ctx, id, t, options, report)
	if err != nil {
		return Image{}, err
	}
	return s.read(id)
}

// build makes image id in a temporary directory and moves it into place.
func (s *Images) build(ctx context.Context, id string, t Template, options map[string]string, report Reporter) error {
	tmp, err := s.tempDir(id)
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	logFile, err := os.Create(s.LogPath(id))
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
		return fmt.Errorf("build image %s: %w (log: %s)", id, err, s.LogPath(id))
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	img := Image{ID: id, Template: t.Name, Options: options, Created: time.Now().UTC().Truncate(time.Second), Size: treeSize(rootfs)}
	return s.install(tmp, img)
}

// install writes the image's description into dir and moves dir into place,
// replacing an older image of the same id.
func (s *Images) install(dir string, img Image) error {
	data, err := jsonIndent(img)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "image.json"), data, 0o644); err != nil {
		return err
	}
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
	if old != "" {
		return os.RemoveAll(old)
	}
	return nil
}

// tempDir makes a fresh DIR/.ID.tmp-PID, removing ones left by builds that
// were killed (the caller holds the image's lock, so none is in use).
func (s *Images) tempDir(id string) (string, error) {
	if err := os.MkdirAll(s.Dir, 0o711); err != nil {
		return "", fmt.Errorf("image cache %s: %w", s.Dir, err)
	}
	stale, _ := filepath.Glob(filepath.Join(s.Dir, "."+id+".tmp-*"))
	for _, dir := range stale {
		os.RemoveAll(dir)
	}
	dir := filepath.Join(s.Dir, "."+id+".tmp-"+strconv.Itoa(os.Getpid()))
	if err := os.Mkdir(dir, 0o711); err != nil {
		return "", err
	}
	return dir, nil
}

// lock takes the image's lock, telling the user when another lodge holds it.
func (s *Images) lock(ctx context.Context, id string, report Reporter) (func(), error) {
	if err := os.MkdirAll(s.Dir, 0o711); err != nil {
		return nil, fmt.Errorf("image cache %s: %w", s.Dir, err)
	}
	f, err := os.OpenFile(filepath.Join(s.Dir, id+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
		report.Step("waiting for another lodge that is building image %s", id)
		if err := flockContext(ctx, f); err != nil {
			f.Close()
			return nil, err
		}
	}
	return func() { f.Close() }, nil
}

// flockContext waits for an exclusive flock until ctx ends.
func flockContext(ctx context.Context, f *os.File) error {
	for {
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
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
	os.Remove(s.LogPath(img.ID))
	os.Remove(filepath.Join(s.Dir, img.ID+".lock"))
	return os.RemoveAll(trash)
}

// CopyRootfs copies an image's root filesystem to dst (which must not exist),
// keeping ownership, modes, hard links, xattrs, ACLs and file capabilities;
// reflinks where the filesystem supports them.
func CopyRootfs(ctx context.Context, src, dst string) error {
	cmd := exec.CommandContext(ctx, "cp", "-a", "--reflink=auto", "--", src, dst)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := runBound(cmd, cmd.Run); err != nil {
		return fmt.Errorf("copy %s: %v: %s", src, err, strings.TrimSpace(out.String()))
	}
	return nil
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
