// Package contracts holds Cocoon's TON contracts — the root and the payment channel —
// compiled from Tolk, with Go builders for their initial data, messages and vouchers, and
// decoders for their get-methods.
//
// The Tolk sources (root.tolk, channel.tolk) and their compiled code (build/*.boc) are
// both committed; build.sh recompiles with the pinned @ton/tolk-js and check.sh proves the
// committed code matches the sources. README.md documents layouts, opcodes and exit codes.
//
// All amounts are integer nanoTON in uint64.
package contracts

//go:generate ./build.sh

import (
	_ "embed"
	"errors"
	"fmt"
	"math/big"
	"sync"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/tvm/cell"
)

var (
	//go:embed build/root.boc
	rootBOC []byte
	//go:embed build/channel.boc
	channelBOC []byte

	rootCode    = sync.OnceValue(func() *cell.Cell { return mustParseCode("root", rootBOC) })
	channelCode = sync.OnceValue(func() *cell.Cell { return mustParseCode("channel", channelBOC) })
)

func mustParseCode(name string, boc []byte) *cell.Cell {
	c, err := cell.FromBOC(boc)
	if err != nil {
		// The BoC is embedded at build time and checked by the tests: a failure here is a
		// broken build, not a runtime condition.
		panic(fmt.Sprintf("contracts: embedded build/%s.boc: %v", name, err))
	}
	return c
}

// RootCode returns the compiled code of the root contract.
func RootCode() *cell.Cell { return rootCode() }

// ChannelCode returns the compiled code of the payment-channel contract.
func ChannelCode() *cell.Cell { return channelCode() }

// OpExcesses is the TON-standard opcode of the message in which the root returns what is
// left of an owner operation's value. Every message body of both contracts starts with a
// 32-bit opcode and a 64-bit query id, as is the TON convention.
const OpExcesses uint32 = 0xd53276db

// ErrMalformed reports a get-method result or cell that does not have the expected shape.
var ErrMalformed = errors.New("contracts: malformed contract data")

func stateInit(code, data *cell.Cell) *tlb.StateInit {
	return &tlb.StateInit{Code: code, Data: data}
}

// addressOf is the address of a contract with the given code and data in the basechain.
func addressOf(code, data *cell.Cell) *address.Address {
	si, err := tlb.ToCell(stateInit(code, data))
	if err != nil {
		// A StateInit of two ordinary cells always serializes.
		panic(fmt.Sprintf("contracts: serialize StateInit: %v", err))
	}
	return address.NewAddress(0, 0, si.Hash())
}

func header(op uint32, queryID uint64) *cell.Builder {
	return cell.BeginCell().MustStoreUInt(uint64(op), 32).MustStoreUInt(queryID, 64)
}

// stack reads a get-method result: values in the order the method returns them.
type stack struct {
	method string
	vals   []any
	i      int
	err    error
}

func newStack(method string, vals []any, n int) *stack {
	s := &stack{method: method, vals: vals}
	if len(vals) != n {
		s.err = fmt.Errorf("%w: %s returned %d values, want %d", ErrMalformed, method, len(vals), n)
	}
	return s
}

func (s *stack) next() any {
	if s.err != nil || s.i >= len(s.vals) {
		return nil
	}
	v := s.vals[s.i]
	s.i++
	return v
}

func (s *stack) fail(format string, args ...any) {
	if s.err == nil {
		s.err = fmt.Errorf("%w: %s value %d: %s", ErrMalformed, s.method, s.i-1, fmt.Sprintf(format, args...))
	}
}

func (s *stack) bigInt() *big.Int {
	v := s.next()
	if s.err != nil {
		return new(big.Int)
	}
	n, ok := v.(*big.Int)
	if !ok {
		s.fail("got %T, want an integer", v)
		return new(big.Int)
	}
	return n
}

func (s *stack) uint(bits int) uint64 {
	n := s.bigInt()
	if n.Sign() < 0 || n.BitLen() > bits {
		s.fail("%v does not fit in uint%d", n, bits)
		return 0
	}
	return n.Uint64()
}

func (s *stack) bytes32() [32]byte {
	var out [32]byte
	n := s.bigInt()
	if n.Sign() < 0 || n.BitLen() > 256 {
		s.fail("%v does not fit in 256 bits", n)
		return out
	}
	n.FillBytes(out[:])
	return out
}

func (s *stack) bool() bool {
	return s.bigInt().Sign() != 0
}

func (s *stack) address() *address.Address {
	v := s.next()
	if s.err != nil {
		return nil
	}
	var sl *cell.Slice
	switch x := v.(type) {
	case *cell.Slice:
		sl = x.Copy()
	case *cell.Cell:
		sl = x.MustBeginParse()
	default:
		s.fail("got %T, want an address slice", v)
		return nil
	}
	a, err := sl.LoadAddr()
	if err != nil || a.Type() != address.StdAddress {
		s.fail("not a standard address: %v", err)
		return nil
	}
	return a
}

// cell returns a cell value, nil for a TVM null (an empty dictionary).
func (s *stack) cell() *cell.Cell {
	v := s.next()
	if s.err != nil || v == nil {
		return nil
	}
	c, ok := v.(*cell.Cell)
	if !ok {
		s.fail("got %T, want a cell", v)
		return nil
	}
	return c
}
