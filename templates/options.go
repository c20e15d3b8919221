package templates

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// Option values end up in paths (an image's id names its directory and lock
// file), on command lines (debootstrap's arguments) and in files of the image
// (apt's sources.list), so each option checks its value when the container is
// created, before any of that. The checks are strict on purpose: a value that
// is a safe word or a plain URL cannot climb out of a directory, start an
// option or a new line.

// checkWord accepts what Debian names releases with: lowercase letters,
// digits and dashes, starting with a letter or digit (bookworm, trixie,
// stable, sid, bookworm-backports).
func checkWord(example string) func(string) error {
	return func(v string) error {
		if validWord(v) && v[0] != '-' && len(v) <= 64 {
			return nil
		}
		return fmt.Errorf("use lowercase letters, digits and dashes, e.g. %s", example)
	}
}

func validWord(s string) bool {
	return s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-')
	})
}

// checkOneOf accepts one of the given words.
func checkOneOf(words ...string) func(string) error {
	return func(v string) error {
		if slices.Contains(words, v) {
			return nil
		}
		return fmt.Errorf("use %s", strings.Join(words, " or "))
	}
}

// checkMirror accepts an http, https or file URL made of the characters URLs
// are plainly written with (no spaces, quotes or control characters).
func checkMirror(v string) error {
	const hint = "use an http://, https:// or file:/// URL without spaces or quotes, e.g. http://deb.debian.org/debian"
	plain := v != "" && len(v) <= 512 && !strings.ContainsFunc(v, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-._~:/@%+=,", r))
	})
	u, err := url.Parse(v)
	if !plain || err != nil || u.Opaque != "" || slices.Contains(strings.Split(u.Path, "/"), "..") {
		return fmt.Errorf("not a plain URL; %s", hint)
	}
	switch {
	case (u.Scheme == "http" || u.Scheme == "https") && u.Host != "":
	case u.Scheme == "file" && u.Host == "" && strings.HasPrefix(u.Path, "/"):
	default:
		return fmt.Errorf("%s", hint)
	}
	return nil
}

// checkPackages accepts Debian package names separated by commas (and spaces).
func checkPackages(v string) error {
	for _, p := range strings.Split(v, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		valid := len(p) >= 2 && len(p) <= 128 && (p[0] >= 'a' && p[0] <= 'z' || p[0] >= '0' && p[0] <= '9') &&
			!strings.ContainsFunc(p, func(r rune) bool {
				return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("+-.", r))
			})
		if !valid {
			return fmt.Errorf("%q is not a Debian package name; list names like openssh-server,less separated by commas", p)
		}
	}
	return nil
}

// checkOption checks the value of option o of template t.
func (t Template) checkOption(o Option, value string) error {
	if o.Check == nil {
		return nil
	}
	if err := o.Check(value); err != nil {
		return fmt.Errorf("template %s option %s=%q: %w", t.Name, o.Name, value, err)
	}
	return nil
}
