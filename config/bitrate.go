package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// BitRate is a bandwidth in bits per second (limits.network.*), written
// with decimal units like tc's: "500kbit", "10Mbit", "1.5Gbit". 0 is none.
type BitRate uint64

var bitUnits = []struct {
	name string
	bits uint64
}{{"Tbit", 1e12}, {"Gbit", 1e9}, {"Mbit", 1e6}, {"kbit", 1e3}, {"bit", 1}}

// minBitRate is the smallest limit: below it a tbf shapes nothing useful
// (and a forgotten unit, "egress = 10", is caught).
const minBitRate = 8000

// ParseBitRate reads "10Mbit" and friends (units case-insensitive: kbit,
// Mbit, Gbit, Tbit, bit; decimals allowed), and "" or "0" for none.
func ParseBitRate(s string) (BitRate, error) {
	text := strings.TrimSpace(s)
	if text == "" || text == "0" {
		return 0, nil
	}
	number, unit := splitNumberUnit(text)
	hint := "write a rate in bits per second like 500kbit, 10Mbit or 1Gbit (decimal units), or 0 for none"
	if number == "" {
		return 0, fmt.Errorf("%q does not start with a number; %s", s, hint)
	}
	if unit == "" {
		return 0, fmt.Errorf("%q has no unit; %s", s, hint)
	}
	var mult uint64
	for _, u := range bitUnits {
		if strings.EqualFold(strings.TrimSpace(unit), u.name) {
			mult = u.bits
		}
	}
	if mult == 0 {
		if l := strings.ToLower(unit); strings.HasSuffix(l, "bps") || strings.HasSuffix(l, "b") || strings.HasSuffix(l, "b/s") {
			hint = "rates are in bits, not bytes: " + hint
		}
		return 0, fmt.Errorf("%q: unknown unit %q; %s", s, unit, hint)
	}
	f, err := strconv.ParseFloat(number, 64)
	if !isDecimal(number) || err != nil || f < 0 || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%q: %q is not a number; %s", s, number, hint)
	}
	bits := f * float64(mult)
	if bits >= math.MaxInt64 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	if bits > 0 && bits < minBitRate {
		return 0, fmt.Errorf("%q is below 8kbit, the smallest limit; use 0 for none", s)
	}
	return BitRate(math.Round(bits)), nil
}

// String is the largest unit that writes the rate with at most three
// decimals exactly: "10Mbit", "1.5Gbit", "8001bit"; "0" for none.
func (r BitRate) String() string {
	if r == 0 {
		return "0"
	}
	for _, u := range bitUnits {
		if number, ok := formatInUnit(int64(r), int64(u.bits)); ok {
			return number + u.name
		}
	}
	return strconv.FormatUint(uint64(r), 10) + "bit"
}

// MarshalText writes String, so saved files read "10Mbit".
func (r BitRate) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText accepts what ParseBitRate does.
func (r *BitRate) UnmarshalText(text []byte) error {
	parsed, err := ParseBitRate(string(text))
	if err != nil {
		return err
	}
	*r = parsed
	return nil
}

func setBitRate(dst *BitRate, v string) error {
	r, err := ParseBitRate(v)
	if err != nil {
		return err
	}
	*dst = r
	return nil
}
