// Package config holds lodge's configuration as data: the per-container
// config.toml, the host's lodge.toml, the registry of user-settable keys,
// container names, and atomic file writes for all of lodge's state files.
//
// Files are decoded strictly: an unknown key, a wrongly typed value or an
// invalid one is an error that names the file, the line and the key, and
// says how to fix it. Every file has a version key; older versions are
// upgraded by a migration table before decoding.
//
// The package only describes configuration. Turning it into cgroup values,
// id maps or mounts is the job of the packages that apply it.
package config
