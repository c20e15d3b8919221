package config

import (
	"math"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want Size
	}{
		{"0", 0},
		{"1024", 1024},
		{" 512 ", 512},
		{"512B", 512},
		{"1K", 1 << 10},
		{"1k", 1 << 10},
		{"256M", 256 << 20},
		{"256MiB", 256 << 20},
		{"256mib", 256 << 20},
		{"256 MiB", 256 << 20},
		{"2G", 2 << 30},
		{"2GiB", 2 << 30},
		{"1T", 1 << 40},
		{"1TiB", 1 << 40},
		{"1KB", 1000},
		{"1kb", 1000},
		{"500MB", 500e6},
		{"2GB", 2e9},
		{"3TB", 3e12},
		{"1.5GiB", 3 << 29},
		{"1.5K", 1536},
		{"0.1GB", 100e6},
		{"8388607TiB", 8388607 << 40},
		{"9223372036854775807", math.MaxInt64},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestParseSizeErrors(t *testing.T) {
	tests := []struct {
		in, wantErr string
	}{
		{"", "empty size"},
		{"-1", `"-1" is negative`},
		{"-1GiB", `"-1GiB" is negative`},
		{"1.5", `"1.5" has a fraction but no unit`},
		{"1.1K", `"1.1K" is not a whole number of bytes`},
		{"1X", `"1X" is not a size`},
		{"GiB", `"GiB" is not a size`},
		{"1.GiB", `"1.GiB" is not a size`},
		{".5GiB", `".5GiB" is not a size`},
		{"1.2.3G", `"1.2.3G" is not a size`},
		{"+1", `"+1" is not a size`},
		{"1e3", `"1e3" is not a size`},
		{"8388608TiB", `"8388608TiB" is too large`},
		{"9223372036854775808", "is too large"},
		{strings.Repeat("9", 65), "is too long"},
	}
	for _, tt := range tests {
		_, err := ParseSize(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("ParseSize(%q) error = %v; want it to contain %q", tt.in, err, tt.wantErr)
		}
	}
}

func TestSizeString(t *testing.T) {
	tests := []struct {
		in   Size
		want string
	}{
		{0, "0"},
		{-1024, "-1024"},
		{1, "1"},
		{1000, "1KB"},
		{1001, "1001"},
		{1023, "1023"},
		{1024, "1KiB"},
		{1 << 30, "1GiB"},
		{4e12, "4TB"},
		{4 << 40, "4TiB"},
		{1025, "1025"}, // 1.0009765625KiB is exact but too long to read
		{1536, "1536"}, // shorter than "1.5KiB"
		{256 << 20, "256MiB"},
		{3 << 29, "1.5GiB"},
		{5 << 28, "1.25GiB"},
		{1536 << 10, "1.5MiB"},
		{1 << 40, "1TiB"},
		{1536 << 30, "1.5TiB"},
		{2e9, "2GB"},
		{1500e6, "1.5GB"},
		{12345678, "12345678"},
		{3 << 20, "3MiB"},
		{math.MaxInt64, "9223372036854775807"},
		{8388607 << 40, "8388607TiB"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("Size(%d).String() = %q; want %q", int64(tt.in), got, tt.want)
		}
	}
}

func TestSizeTextRoundTrip(t *testing.T) {
	for _, size := range []Size{0, 1, 1024, 1536, 3 << 29, 1 << 40, 2e9, math.MaxInt64} {
		text, err := size.MarshalText()
		if err != nil {
			t.Fatalf("MarshalText(%d): %v", int64(size), err)
		}
		var back Size
		if err := back.UnmarshalText(text); err != nil || back != size {
			t.Errorf("UnmarshalText(%q) = %d, %v; want %d", text, int64(back), err, int64(size))
		}
	}
	if _, err := Size(-1).MarshalText(); err == nil {
		t.Error("MarshalText(-1) succeeded; want an error")
	}
}

// FuzzParseSize checks that any accepted size is non-negative and that its
// canonical form parses back to the same value and formats the same.
func FuzzParseSize(f *testing.F) {
	for _, seed := range []string{"0", "1", "1.5GiB", "256M", "2GB", "9223372036854775807", "0.001TiB", "1.1K"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		size, err := ParseSize(in)
		if err != nil {
			return
		}
		if size < 0 {
			t.Fatalf("ParseSize(%q) = %d, negative", in, int64(size))
		}
		canonical := size.String()
		back, err := ParseSize(canonical)
		if err != nil || back != size {
			t.Fatalf("ParseSize(%q) = %d; ParseSize(String() = %q) = %d, %v", in, int64(size), canonical, int64(back), err)
		}
		if again := back.String(); again != canonical {
			t.Fatalf("String is not stable: %q then %q", canonical, again)
		}
	})
}

func TestParseDuration(t *testing.T) {
	good := map[string]Duration{"30s": Duration(30e9), " 1m30s ": Duration(90e9), "0s": 0, "2h": Duration(7200e9)}
	for in, want := range good {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	bad := map[string]string{"-1s": "is negative", "30": "is not a duration", "": "is not a duration", "soon": "is not a duration"}
	for in, wantErr := range bad {
		if _, err := ParseDuration(in); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("ParseDuration(%q) error = %v; want %q", in, err, wantErr)
		}
	}
	var d Duration
	if err := d.UnmarshalText([]byte("1m30s")); err != nil || d.String() != "1m30s" || d.Std().Seconds() != 90 {
		t.Errorf("UnmarshalText(1m30s) = %v, %v", d, err)
	}
	if text, _ := d.MarshalText(); string(text) != "1m30s" {
		t.Errorf("MarshalText = %q; want 1m30s", text)
	}
}
