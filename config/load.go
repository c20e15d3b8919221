package config

import (
	"fmt"

	"lodge/internal/rawfile"
)

// Load reads a container config file. Decoding is strict: unknown keys and
// wrongly typed values are errors naming the file and line. Keys missing
// from the file keep the values of Default(). The result is validated.
func Load(path string) (*Container, error) {
	text, err := rawfile.Read(path)
	if err != nil {
		return nil, fmt.Errorf("read container config: %w", err)
	}
	return parseContainer(sourceFile{path: path, text: string(text)})
}

// Parse reads container config text (from `lodge config edit`, say) as Load
// reads a file; path is used in error messages.
func Parse(path string, text []byte) (*Container, error) {
	return parseContainer(sourceFile{path: path, text: string(text)})
}

func parseContainer(file sourceFile) (*Container, error) {
	// A file of the current version, the usual case, is parsed once; only
	// another version (or a file that does not decode, for the upgrade's
	// error message) takes the upgrade's parse too. lodge list parses every
	// container's file: twice made it a third of a list's time.
	c := Default()
	if meta, err := file.decodeStrict(c); err == nil && meta.IsDefined("version") && c.Version == CurrentVersion {
		return validated(file, c)
	}
	file, err := file.upgrade(CurrentVersion, migrations)
	if err != nil {
		return nil, err
	}
	c = Default()
	if _, err := file.decodeStrict(c); err != nil {
		return nil, err
	}
	return validated(file, c)
}

func validated(file sourceFile, c *Container) (*Container, error) {
	if err := c.Validate(); err != nil {
		return nil, file.locate(err)
	}
	return c, nil
}
