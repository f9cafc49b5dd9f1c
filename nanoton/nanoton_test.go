package nanoton

import "testing"

func TestParseAndFormat(t *testing.T) {
	for in, want := range map[string]uint64{
		"1.5": 1_500_000_000, "2": 2_000_000_000, "0.000000001": 1, "1500000000n": 1_500_000_000, "0n": 0,
		"18446744073.709551615": 1<<64 - 1, "18446744073709551615n": 1<<64 - 1,
	} {
		if got, err := Parse(in); err != nil || got != want {
			t.Errorf("Parse(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "1.", ".5", "1.0000000001", "-1", "1e9", "1,5", "n", "1.5n", "18446744073.709551616", "18446744074", "18446744073709551616n", " 1"} {
		if got, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) = %d, want an error", in, got)
		}
	}
	for n, want := range map[uint64]string{0: "0.000000000", 1: "0.000000001", 1_500_000_000: "1.500000000", 1<<64 - 1: "18446744073.709551615"} {
		if got := Format(n); got != want {
			t.Errorf("Format(%d) = %q, want %q", n, got, want)
		}
	}
}
