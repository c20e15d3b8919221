package config

import (
	"bytes"
	"fmt"

	"github.com/BurntSushi/toml"

	"lodge/internal/atomicfile"
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
	return atomicfile.Write(path, data, 0o644)
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
