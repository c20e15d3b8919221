package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"lodge/internal/atomicfile"
	"lodge/manager"
	"lodge/remote/api"
	"lodge/remote/pki"
)

// The remotes a lodge root knows, one directory each:
//
//	ROOT/remotes/NAME/remote.json  address, pinned fingerprint, added
//	ROOT/remotes/NAME/cert.pem     this host's client certificate for it
//	ROOT/remotes/NAME/key.pem      its key (0600)
//
// A remote is written in a directory of its own and renamed into place,
// so a remote is whole or absent.

// Remote is a host this one talks to.
type Remote struct {
	Name    string `json:"name" yaml:"name"`
	Address string `json:"address" yaml:"address"`
	// Fingerprint is the remote host certificate's SHA-256, pinned from the token.
	Fingerprint string `json:"fingerprint" yaml:"fingerprint"`
	// TrustedAs is the name the remote host trusts this one as.
	TrustedAs string    `json:"trusted_as" yaml:"trusted_as"`
	Added     time.Time `json:"added" yaml:"added"`
}

const remoteFile = "remote.json"

func remotesDir(root string) string { return filepath.Join(root, "remotes") }

// Load reads the remote named name.
func Load(root, name string) (Remote, pki.Pair, error) {
	if err := api.CheckName("remote", name); err != nil {
		return Remote{}, pki.Pair{}, err
	}
	dir := filepath.Join(remotesDir(root), name)
	data, err := os.ReadFile(filepath.Join(dir, remoteFile))
	if errors.Is(err, fs.ErrNotExist) {
		return Remote{}, pki.Pair{}, api.Mark(fmt.Errorf("no remote named %q (lodge remote list; lodge remote add adds one)", name), manager.ErrNotFound)
	}
	if err != nil {
		return Remote{}, pki.Pair{}, err
	}
	var r Remote
	if err := json.Unmarshal(data, &r); err != nil {
		return Remote{}, pki.Pair{}, fmt.Errorf("%s: %w", filepath.Join(dir, remoteFile), err)
	}
	cert, err := pki.Load(dir)
	return r, cert, err
}

// List returns the remotes, by name.
func List(root string) ([]Remote, error) {
	entries, err := os.ReadDir(remotesDir(root))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	out := []Remote{}
	for _, e := range entries {
		if !e.IsDir() || api.CheckName("remote", e.Name()) != nil {
			continue // a remote being added (.NAME.new-*)
		}
		r, _, err := Load(root, e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Remote) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Remove forgets a remote (the remote host still trusts the certificate
// until lodge trust remove there).
func Remove(root, name string) error {
	if _, _, err := Load(root, name); err != nil {
		return err
	}
	dir := filepath.Join(remotesDir(root), name)
	gone := filepath.Join(remotesDir(root), fmt.Sprintf(".%s.gone-%d", name, time.Now().UnixNano()))
	if err := os.Rename(dir, gone); err != nil {
		return err
	}
	return os.RemoveAll(gone)
}

// prepare makes the directory of a remote to be added, with its client
// certificate, beside where it goes.
func prepare(root, name string) (tmp string, cert pki.Pair, err error) {
	if err := os.MkdirAll(remotesDir(root), 0o700); err != nil {
		return "", pki.Pair{}, err
	}
	tmp, err = os.MkdirTemp(remotesDir(root), "."+name+".new-")
	if err != nil {
		return "", pki.Pair{}, err
	}
	hostname, _ := os.Hostname()
	certPEM, keyPEM, err := pki.New("lodge client " + hostname + " for " + name)
	if err == nil {
		err = pki.Write(tmp, certPEM, keyPEM)
	}
	if err == nil {
		cert, err = pki.Load(tmp)
	}
	if err != nil {
		os.RemoveAll(tmp)
		return "", pki.Pair{}, err
	}
	return tmp, cert, nil
}

// commit saves r in tmp and renames tmp into place.
func commit(root, tmp string, r Remote) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(tmp, remoteFile), append(data, '\n'), 0o600); err != nil {
		return err
	}
	if err := atomicfile.SyncDir(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(remotesDir(root), r.Name)); err != nil {
		return api.Mark(fmt.Errorf("remote %q was added meanwhile: %w", r.Name, err), manager.ErrExists)
	}
	return atomicfile.SyncDir(remotesDir(root))
}
