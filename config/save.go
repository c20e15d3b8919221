package config

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/BurntSushi/toml"
)

const containerFileHeader = "# lodge container configuration; see README.md \"Configuration keys\"\n\n"

// Save validates c and writes it to path atomically, so a file Load would
// reject is never written and a crash leaves the old file or the new one.
func (c *Container) Save(path string) error {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("save container config %s: %w", path, err)
	}
	data, err := c.Marshal()
	if err != nil {
		return fmt.Errorf("save container config %s: %w", path, err)
	}
	return WriteFileAtomic(path, data, 0o644)
}

// Marshal encodes c as the TOML text Save writes, header comment included.
func (c *Container) Marshal() ([]byte, error) {
	buf := bytes.NewBufferString(containerFileHeader)
	encoder := toml.NewEncoder(buf)
	encoder.Indent = "" // flat tables read better in a small file
	if err := encoder.Encode(c); err != nil {
		return nil, fmt.Errorf("encode container config: %w", err)
	}
	return buf.Bytes(), nil
}

// WriteFileAtomic replaces path with data: it writes a temporary file in the
// same directory, syncs it, renames it over path and syncs the directory, so
// after a crash path holds either the old content or the new, never a mix.
// perm is applied exactly (the umask does not narrow it). A symlink at path
// is replaced, not followed.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := writeAndSync(tmp, data, perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return syncDir(dir)
}

// writeAndSync fills the temporary file and makes it durable before the
// rename publishes it; Close reports late write errors (e.g. on NFS).
func writeAndSync(tmp *os.File, data []byte, perm os.FileMode) error {
	if err := tmp.Chmod(perm); err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	return tmp.Close()
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
