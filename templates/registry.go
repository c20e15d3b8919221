// Package templates builds root filesystems for new containers. Each template
// registers by name with its options; lodge create looks it up, builds the
// root filesystem into a staging directory, then configures it for the
// container (hostname and the like).
package templates

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Option is one template option, e.g. debian's release.
type Option struct {
	Name    string
	Default string
	Doc     string
	// Check refuses values that are unsafe or meaningless (see options.go);
	// nil accepts any value.
	Check func(value string) error
}

// Build is a request to build a root filesystem.
type Build struct {
	Rootfs  string            // empty directory to fill
	Options map[string]string // validated options, defaults filled in
	Log     io.Writer         // detailed output (a log file)
	Report  Reporter          // progress for the user
}

// Template makes root filesystems of one kind.
type Template struct {
	Name        string
	Description string
	Options     []Option
	// Revision changes whenever Build would make a different tree for the
	// same options (a fix in the template's set-up), so that images cached by
	// an older lodge are rebuilt rather than reused.
	Revision int
	// Build fills b.Rootfs. It must honour ctx (Ctrl-C) and may leave a partial
	// tree behind on error: the caller removes the staging directory.
	Build func(ctx context.Context, b Build) error
	// Configure adapts a built root filesystem to one container (hostname,
	// /etc/hosts). It runs after Build, or after a copy from the image cache.
	Configure func(rootfs, container string) error
}

// Registry holds the templates by name.
type Registry struct{ byName map[string]Template }

// NewRegistry returns a registry holding the given templates.
func NewRegistry(ts ...Template) *Registry {
	r := &Registry{byName: map[string]Template{}}
	for _, t := range ts {
		r.byName[t.Name] = t
	}
	return r
}

// Default returns the registry of the templates lodge ships.
func Default() *Registry { return NewRegistry(Busybox(), Debian()) }

// Lookup returns template name, or an error listing the ones that exist.
func (r *Registry) Lookup(name string) (Template, error) {
	t, ok := r.byName[name]
	if !ok {
		return Template{}, fmt.Errorf("unknown template %q; available templates: %s", name, strings.Join(r.Names(), ", "))
	}
	return t, nil
}

// Names lists the template names, sorted.
func (r *Registry) Names() []string {
	names := make([]string, 0, len(r.byName))
	for name := range r.byName {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// ResolveOptions checks opts against t's options and fills in defaults: host
// defaults first (from /etc/lodge/lodge.toml), then the template's own.
func (t Template) ResolveOptions(opts, hostDefaults map[string]string) (map[string]string, error) {
	known := map[string]Option{}
	for _, o := range t.Options {
		known[o.Name] = o
	}
	resolved := map[string]string{}
	for _, o := range t.Options {
		resolved[o.Name] = o.Default
	}
	for _, layer := range []map[string]string{hostDefaults, opts} {
		for k, v := range layer {
			if _, ok := known[k]; !ok {
				return nil, fmt.Errorf("template %s has no option %q (options: %s)", t.Name, k, t.optionNames())
			}
			resolved[k] = v
		}
	}
	for _, o := range t.Options {
		if err := t.checkOption(o, resolved[o.Name]); err != nil {
			return nil, err
		}
	}
	return resolved, nil
}

func (t Template) optionNames() string {
	if len(t.Options) == 0 {
		return "none"
	}
	names := make([]string, len(t.Options))
	for i, o := range t.Options {
		names[i] = o.Name
	}
	return strings.Join(names, ", ")
}
