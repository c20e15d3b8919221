package config

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// Size is a number of bytes. In TOML and on the command line it is written
// with a unit, like "256MiB" or "1.5G"; see ParseSize for the accepted forms.
type Size int64

// sizeUnit returns the multiplier of a unit suffix, case-insensitive. The
// one-letter units are binary because that is what people mean by "512M"
// for memory, and what the kernel, systemd and Docker accept.
func sizeUnit(unit string) (int64, bool) {
	switch strings.ToLower(unit) {
	case "", "b":
		return 1, true
	case "k", "kib":
		return 1 << 10, true
	case "m", "mib":
		return 1 << 20, true
	case "g", "gib":
		return 1 << 30, true
	case "t", "tib":
		return 1 << 40, true
	case "kb":
		return 1e3, true
	case "mb":
		return 1e6, true
	case "gb":
		return 1e9, true
	case "tb":
		return 1e12, true
	}
	return 0, false
}

// maxSizeText bounds the input so a hostile value cannot make the exact
// arithmetic below work on huge numbers.
const maxSizeText = 64

// sizeHint ends every size error so the user knows what to write instead.
const sizeHint = `use a whole number of bytes or a number with a unit, e.g. 512MiB, 1.5GiB, 2G or 500MB`

// ParseSize parses a byte count: a plain integer is bytes; a number with a
// unit may have a fraction ("1.5GiB"). Units are case-insensitive: K, M, G, T
// and KiB, MiB, GiB, TiB are powers of 1024; KB, MB, GB, TB are powers of 1000.
func ParseSize(s string) (Size, error) {
	text := strings.TrimSpace(s)
	if text == "" {
		return 0, fmt.Errorf("empty size; %s", sizeHint)
	}
	if len(text) > maxSizeText {
		return 0, fmt.Errorf("%q is too long for a size; %s", s, sizeHint)
	}
	if strings.HasPrefix(text, "-") {
		return 0, fmt.Errorf("%q is negative; %s", s, sizeHint)
	}
	number, unit := splitNumberUnit(text)
	multiplier, ok := sizeUnit(unit)
	if !ok || !isDecimal(number) {
		return 0, fmt.Errorf("%q is not a size; %s", s, sizeHint)
	}
	if unit == "" && strings.Contains(number, ".") {
		return 0, fmt.Errorf("%q has a fraction but no unit, and bytes are whole; %s", s, sizeHint)
	}
	return scaleSize(s, number, multiplier)
}

// splitNumberUnit splits "1.5 GiB" into "1.5" and "GiB".
func splitNumberUnit(text string) (number, unit string) {
	end := strings.IndexFunc(text, func(r rune) bool {
		return (r < '0' || r > '9') && r != '.'
	})
	if end < 0 {
		return text, ""
	}
	return text[:end], strings.TrimSpace(text[end:])
}

// isDecimal reports whether s is digits with at most one '.' that has digits
// on both sides ("1", "1.5"; not ".5", "1.", "1.2.3").
func isDecimal(s string) bool {
	whole, fraction, hasDot := strings.Cut(s, ".")
	return allDigits(whole) && (!hasDot || allDigits(fraction))
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// scaleSize computes number*multiplier exactly (big.Rat, so "0.1GB" is
// exactly 100000000 and there is no float rounding) and checks the result is
// a whole number of bytes that fits in an int64.
func scaleSize(original, number string, multiplier int64) (Size, error) {
	value, ok := new(big.Rat).SetString(number)
	if !ok {
		return 0, fmt.Errorf("%q is not a size; %s", original, sizeHint)
	}
	value.Mul(value, new(big.Rat).SetInt64(multiplier))
	if !value.IsInt() {
		return 0, fmt.Errorf("%q is not a whole number of bytes; use a smaller unit", original)
	}
	bytes := value.Num()
	if !bytes.IsInt64() {
		return 0, fmt.Errorf("%q is too large; the largest size is %d bytes", original, int64(math.MaxInt64))
	}
	return Size(bytes.Int64()), nil
}

// String gives the canonical form: the shortest exact way to write the
// value, with at most three decimals. On a tie a unit beats plain bytes and
// a binary unit beats a decimal one: "256MiB", "1.5GiB", "2GB", "1KiB",
// "1023". ParseSize(s.String()) always gives s back.
func (s Size) String() string {
	if s <= 0 {
		return strconv.FormatInt(int64(s), 10)
	}
	best := ""
	for _, unit := range []struct {
		name  string
		bytes int64
	}{
		{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
		{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3},
		{"", 1},
	} {
		number, ok := formatInUnit(int64(s), unit.bytes)
		if ok && (best == "" || len(number+unit.name) < len(best)) {
			best = number + unit.name
		}
	}
	return best // never empty: every positive value is exact in bytes
}

// formatInUnit writes n/unit with up to three decimals, if n is at least one
// unit and that is exact. The remainder is below 2^40 (or 10^12), so
// rem*1000 cannot overflow.
func formatInUnit(n, unit int64) (string, bool) {
	whole, rem := n/unit, n%unit
	if whole == 0 || rem*1000%unit != 0 {
		return "", false
	}
	text := strconv.FormatInt(whole, 10)
	if rem == 0 {
		return text, true
	}
	thousandths := fmt.Sprintf("%03d", rem*1000/unit)
	return text + "." + strings.TrimRight(thousandths, "0"), true
}

// MarshalText writes the canonical form, so saved files read "256MiB".
func (s Size) MarshalText() ([]byte, error) {
	if s < 0 {
		return nil, errors.New("negative size")
	}
	return []byte(s.String()), nil
}

// UnmarshalText accepts everything ParseSize does. The TOML decoder also
// passes integers through here as decimal text, so `memory = 1073741824`
// means bytes.
func (s *Size) UnmarshalText(text []byte) error {
	parsed, err := ParseSize(string(text))
	if err != nil {
		return err
	}
	*s = parsed
	return nil
}
