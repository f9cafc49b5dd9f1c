package chain

import (
	"fmt"

	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/tvm/cell"
)

// MarshalStack serializes get-method stack values as a TL-B VmStack, the way a liteserver takes
// arguments: vals[0] deepest, the last value on top. Values are those tonutils-go's tlb.SerializeStackValue
// accepts: nil, integers of any Go integer type and *big.Int, *cell.Cell, *cell.Slice, *cell.Builder,
// *address.Address (as a slice), tlb.StackNaN and []any (a tuple).
func MarshalStack(vals []any) (*cell.Cell, error) {
	var s tlb.Stack
	for i := len(vals) - 1; i >= 0; i-- {
		s.Push(vals[i])
	}
	c, err := s.ToCell()
	if err != nil {
		return nil, fmt.Errorf("chain: marshal stack: %w", err)
	}
	return c, nil
}

// MaxStackCells bounds how many cells a stack given to UnmarshalStack may unfold into, counting a cell
// once for every path that reaches it: a BoC shares cells, and a few hundred bytes can otherwise unfold
// into billions of nested tuple entries.
const MaxStackCells = 1 << 16

// UnmarshalStack parses a TL-B VmStack into values, deepest first, so that
// UnmarshalStack(MarshalStack(v)) is v with integers as *big.Int, addresses as *cell.Slice and
// tuples as []any.
func UnmarshalStack(c *cell.Cell) (vals []any, err error) {
	budget := MaxStackCells
	if !fitsTree(c, &budget) {
		return nil, fmt.Errorf("chain: unmarshal stack: unfolds into more than %d cells", MaxStackCells)
	}
	// tonutils-go's parser trusts its input in places; a peer's bytes must not take the process down.
	defer func() {
		if r := recover(); r != nil {
			vals, err = nil, fmt.Errorf("chain: unmarshal stack: malformed: %v", r)
		}
	}()
	var s tlb.Stack
	if err := tlb.Parse(&s, c); err != nil {
		return nil, fmt.Errorf("chain: unmarshal stack: %w", err)
	}
	for s.Depth() > 0 {
		v, err := s.Pop()
		if err != nil {
			return nil, fmt.Errorf("chain: unmarshal stack: %w", err)
		}
		vals = append(vals, v)
	}
	return vals, nil
}

// fitsTree reports whether c, unfolded into a tree, has at most *budget cells.
func fitsTree(c *cell.Cell, budget *int) bool {
	if *budget--; *budget < 0 {
		return false
	}
	for i := range int(c.RefsNum()) {
		r, err := c.PeekRef(i)
		if err != nil || !fitsTree(r, budget) {
			return false
		}
	}
	return true
}
