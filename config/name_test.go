package config

import (
	"strings"
	"testing"
	"unicode"
)

func TestValidateName(t *testing.T) {
	for _, name := range []string{"a", "web1", "Web-1", "a-b-c", "x" + strings.Repeat("0", 62)} {
		if err := ValidateName(name); err != nil {
			t.Errorf("ValidateName(%q) = %v; want nil", name, err)
		}
	}
	const rule = "; use letters, digits and dashes, 1-63 characters"
	tests := []struct {
		name, wantErr string
	}{
		{"", `invalid container name "": must not be empty` + rule},
		{"1abc", `invalid container name "1abc": must start with a letter` + rule},
		{"-abc", `invalid container name "-abc": must start with a letter` + rule},
		{"abc-", `invalid container name "abc-": must not end with a dash` + rule},
		{"a/b", `invalid container name "a/b": must not contain '/'` + rule},
		{"a..b", `invalid container name "a..b": must not contain '.'` + rule},
		{"a_b", `invalid container name "a_b": must not contain '_'` + rule},
		{"a b", `invalid container name "a b": must not contain ' '` + rule},
		{"a\nb", `invalid container name "a\nb": must not contain '\n'` + rule},
		{"wéb", `invalid container name "wéb": must not contain 'é'` + rule},
		{"a" + strings.Repeat("b", 63), `invalid container name "a` + strings.Repeat("b", 63) + `": is 64 characters long` + rule},
	}
	for _, tt := range tests {
		err := ValidateName(tt.name)
		if err == nil || err.Error() != tt.wantErr {
			t.Errorf("ValidateName(%q) = %v\nwant %s", tt.name, err, tt.wantErr)
		}
	}
}

// FuzzValidateName checks that an accepted name is safe as a path element
// and a hostname, whatever the input.
func FuzzValidateName(f *testing.F) {
	for _, seed := range []string{"web1", "a", "..", "a/b", "a\x00", "-a", "a-", "é", strings.Repeat("a", 64)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if ValidateName(name) != nil {
			return
		}
		if len(name) < 1 || len(name) > 63 {
			t.Fatalf("accepted %q of length %d", name, len(name))
		}
		if strings.Contains(name, "/") || strings.Contains(name, "..") || strings.HasPrefix(name, "-") || strings.HasSuffix(name, "-") {
			t.Fatalf("accepted unsafe name %q", name)
		}
		if strings.ContainsFunc(name, func(r rune) bool { return unicode.IsControl(r) || r > unicode.MaxASCII }) {
			t.Fatalf("accepted name with control or non-ASCII characters %q", name)
		}
	})
}
