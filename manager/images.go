package manager

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"lodge/storage"
	"lodge/templates"
)

// Images lists the cached and imported images.
func (m *Manager) Images() ([]templates.Image, error) { return m.images().List() }

// ImportImage unpacks a root filesystem tarball as image alias.
func (m *Manager) ImportImage(ctx context.Context, file, alias string, report templates.Reporter) (templates.Image, error) {
	img, err := m.images().Import(ctx, file, alias, report)
	return img, imageError(err)
}

// ExportImage writes an image (id or alias) to a tarball.
func (m *Manager) ExportImage(ctx context.Context, name, file string, report templates.Reporter) error {
	return imageError(m.images().Export(ctx, name, file, report))
}

// DeleteImage removes an image (id or alias). Containers the dir and btrfs
// backends made from it are copies and keep running; it is refused while
// overlay containers or snapshots in this root stand on it (their bottom
// layer). Other lodge roots sharing the image cache are not checked.
func (m *Manager) DeleteImage(ctx context.Context, name string) error {
	img, err := m.images().Lookup(name)
	if err != nil {
		return imageError(err)
	}
	users, err := storage.ImageUsers(m.store.Root, m.images().Rootfs(img.ID))
	if err != nil {
		return err
	}
	if len(users) > 0 {
		return ImageInUseError{Image: img.ID, Users: m.describeTrees(users)}
	}
	return imageError(m.images().Delete(ctx, name))
}

// ImageInUseError refuses to delete an image overlay trees stand on.
type ImageInUseError struct {
	Image string
	Users []string // containers (NAME) and snapshots (NAME/SNAP)
}

func (e ImageInUseError) Error() string {
	return fmt.Sprintf("image %s is the lower layer of overlay storage of %s; delete those first (lodge delete NAME, lodge snapshot delete NAME SNAP)",
		e.Image, strings.Join(e.Users, ", "))
}

// Is makes the refusal a conflict like a running container's.
func (e ImageInUseError) Is(target error) bool { return target == ErrRunning }

// describeTrees names the containers and snapshots of overlay tree paths.
func (m *Manager) describeTrees(paths []string) []string {
	containers := filepath.Join(m.store.Root, "containers") + "/"
	seen := map[string]bool{}
	var names []string
	for _, p := range paths {
		rel := strings.TrimPrefix(p, containers)
		parts := strings.Split(rel, "/")
		name := rel
		switch {
		case rel == p: // a container being made or deleted (ROOT/tmp)
		case len(parts) >= 4 && parts[1] == "snapshots":
			name = parts[0] + "/" + parts[2]
		default:
			name = parts[0]
		}
		if !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	return names
}

// imageError maps image errors to the manager's, for the exit status.
func imageError(err error) error {
	switch {
	case errors.Is(err, templates.ErrImageNotFound):
		return notFoundError{err}
	case errors.Is(err, templates.ErrImageExists):
		return existsError{err}
	case errors.Is(err, templates.ErrBadName):
		return invalid(err)
	}
	return err
}

type existsError struct{ err error }

func (e existsError) Error() string        { return e.err.Error() }
func (e existsError) Unwrap() error        { return e.err }
func (e existsError) Is(target error) bool { return target == ErrExists }

type notFoundError struct{ err error }

func (e notFoundError) Error() string        { return e.err.Error() }
func (e notFoundError) Unwrap() error        { return e.err }
func (e notFoundError) Is(target error) bool { return target == ErrNotFound }
