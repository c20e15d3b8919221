package manager

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"lodge/storage"
)

// What another host sends about overlay layers is checked before it names
// anything here: a layer id names a directory of this host's layer store,
// and an overlay tree's layers.json names the paths its container is built
// from (an absolute image directory among them). A host that trusts another
// enough to take its containers does not give it this host's files: a tree
// naming "/" as its image, or a layer "../..", would make them the
// container's root filesystem.

// checkOfferedLayers refuses an offer whose layer ids are not plain names.
func checkOfferedLayers(ids []string) error {
	for _, id := range ids {
		if err := storage.CheckLayerID(id); err != nil {
			return invalid(err)
		}
	}
	return nil
}

// checkAskedLayers is the source's check of the layers the target asks
// for: only layers of the offer, which name this host's own directories.
func checkAskedLayers(asked, offered []string, name string) error {
	for _, id := range asked {
		if !slices.Contains(offered, id) || storage.CheckLayerID(id) != nil {
			return fmt.Errorf("the target asked for layer %q, which is not one of %s's", id, name)
		}
	}
	return nil
}

// incomingBase is this host's own root filesystem directory of the offered
// image: found by the image's id, or else by the path the source gave only
// when that is one of this host's images. Never the path as sent.
func (m *Manager) incomingBase(offer MigrationOffer) (string, error) {
	images := m.images()
	if offer.Image != "" {
		if img, err := images.Lookup(offer.Image); err == nil {
			return images.Rootfs(img.ID), nil
		}
	}
	if list, err := images.List(); err == nil {
		for _, img := range list {
			if images.Rootfs(img.ID) == offer.BaseImage {
				return offer.BaseImage, nil
			}
		}
	}
	err := fmt.Errorf("the image of %s (%s, %s) is not on this host: create a container from it here once, or import it (lodge image import)", offer.Name, offer.Image, offer.BaseImage)
	return "", kindError{err, ErrNotFound}
}

// sealIncomingTrees rewrites the layers.json of every overlay tree received
// for in (its rootfs, and a copy's snapshots') from checked values: layer
// ids of the offer, each present here, over this host's own directory of
// the image. What the source wrote there is not trusted.
func (m *Manager) sealIncomingTrees(in *incoming) error {
	if in.offer.Backend != storage.OverlayName {
		return nil
	}
	base, err := m.incomingBase(in.offer)
	if err != nil {
		return err
	}
	trees := []string{filepath.Join(in.res.dir, "rootfs")}
	snaps, _ := filepath.Glob(filepath.Join(in.res.dir, "snapshots", "*", "rootfs"))
	for _, dir := range append(trees, snaps...) {
		t, err := storage.ReadTree(dir)
		if err != nil {
			return err
		}
		for _, id := range t.Layers {
			if storage.CheckLayerID(id) != nil || !slices.Contains(in.offer.Layers, id) {
				return invalid(fmt.Errorf("a tree of %s names layer %q, which is not one of those offered", in.offer.Name, id))
			}
		}
		t.Image = base
		for _, lower := range m.overlay().Lowers(t) {
			// A garbage collection meanwhile could have taken a layer
			// received before the trees that name it.
			if _, err := os.Stat(lower); errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("a layer of %s is missing here: %w", in.offer.Name, err)
			} else if err != nil {
				return err
			}
		}
		if err := storage.WriteTree(dir, t); err != nil {
			return err
		}
	}
	return nil
}
