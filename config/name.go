package config

import "fmt"

// maxNameLength is the longest hostname label DNS allows (RFC 1035), so a
// container's name can always be its hostname.
const maxNameLength = 63

const nameRule = "use letters, digits and dashes, 1-63 characters"

// ValidateName checks a container name: ASCII letters, digits and dashes,
// starting with a letter, not ending with a dash, 1-63 characters. That
// makes it a valid hostname and a safe single path element.
func ValidateName(name string) error {
	if problem := nameProblem(name); problem != "" {
		return fmt.Errorf("invalid container name %q: %s; %s", name, problem, nameRule)
	}
	return nil
}

// nameProblem says what is wrong with name, or "" if nothing is.
func nameProblem(name string) string {
	switch {
	case name == "":
		return "must not be empty"
	case len(name) > maxNameLength:
		return fmt.Sprintf("is %d characters long", len(name))
	case !isLetter(name[0]):
		return "must start with a letter"
	case name[len(name)-1] == '-':
		return "must not end with a dash"
	}
	for _, r := range name {
		if r > 127 || !isLetter(byte(r)) && !isDigit(byte(r)) && r != '-' {
			return fmt.Sprintf("must not contain %q", r)
		}
	}
	return ""
}

func isLetter(b byte) bool { return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' }
func isDigit(b byte) bool  { return b >= '0' && b <= '9' }
