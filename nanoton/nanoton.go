// Package nanoton reads and writes amounts of Toncoin as integer nanoTON (10^-9 TON), the one unit
// every Cocoon amount is kept in: with integer arithmetic only, so that every amount is exact or
// refused.
package nanoton

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// PerTON is how many nanoTON make one TON.
const PerTON uint64 = 1_000_000_000

// Format writes nanoTON as TON with all nine decimals, e.g. "1.500000000".
func Format(nano uint64) string {
	return fmt.Sprintf("%d.%09d", nano/PerTON, nano%PerTON)
}

// Parse reads an amount given on a command line: TON as a decimal with at most nine decimals
// ("1.5", "2", "0.000000001"), or nanoTON as an integer followed by "n" ("1500000000n"). It uses
// integer arithmetic only: every amount is exact or refused.
func Parse(s string) (uint64, error) {
	if digits, ok := strings.CutSuffix(s, "n"); ok {
		if !allDigits(digits) {
			return 0, fmt.Errorf("amount %q: want TON like 1.5 or nanoTON like 1500000000n", s)
		}
		n, err := strconv.ParseUint(digits, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("amount %q: too large", s)
		}
		return n, nil
	}
	whole, frac, dot := strings.Cut(s, ".")
	if !allDigits(whole) || dot && (!allDigits(frac) || len(frac) > 9) {
		return 0, fmt.Errorf("amount %q: want TON like 1.5 (at most 9 decimals) or nanoTON like 1500000000n", s)
	}
	w, err := strconv.ParseUint(whole, 10, 64)
	if err != nil || w > math.MaxUint64/PerTON {
		return 0, fmt.Errorf("amount %q: too large", s)
	}
	var f uint64
	if dot {
		f, _ = strconv.ParseUint(frac+strings.Repeat("0", 9-len(frac)), 10, 64)
	}
	n := w*PerTON + f
	if n < f {
		return 0, fmt.Errorf("amount %q: too large", s)
	}
	return n, nil
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
