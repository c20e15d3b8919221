package manager

import (
	"context"
	"errors"

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

// DeleteImage removes an image (id or alias). Containers made from it are
// copies and keep running.
func (m *Manager) DeleteImage(ctx context.Context, name string) error {
	return imageError(m.images().Delete(ctx, name))
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
