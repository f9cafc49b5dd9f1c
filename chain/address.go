package chain

import (
	"fmt"
	"strings"

	"github.com/xssnick/tonutils-go/address"
)

// ParseAddress reads an address in user-friendly ("EQ…", "UQ…") or raw ("0:<hex>") form.
func ParseAddress(s string) (*address.Address, error) {
	if strings.Contains(s, ":") {
		a, err := address.ParseRawAddr(s)
		if err != nil {
			return nil, fmt.Errorf("chain: address %q: %w", s, err)
		}
		return a, nil
	}
	a, err := address.ParseAddr(s)
	if err != nil {
		return nil, fmt.Errorf("chain: address %q: %w", s, err)
	}
	return a, nil
}
