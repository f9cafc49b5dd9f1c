package local

import (
	"context"
	"errors"
	"fmt"
	"math/big"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/tvm"
	"github.com/xssnick/tonutils-go/tvm/cell"
	"github.com/xssnick/tonutils-go/tvm/tuple"
	"github.com/xssnick/tonutils-go/tvm/vm"

	"github.com/cocoon-go/cocoon/chain"
)

// input is one inbound message as the journal holds it: an external message or a faucet credit.
type input struct {
	Msg  *cell.Cell
	Now  uint32
	Mint uint64 // nanoTON the faucet creates, 0 for an external message
}

// outcome is what applying one input changes, computed without touching the chain.
type outcome struct {
	accounts map[string]*account // new state of each changed account; txs holds only its new transactions
	order    []string            // changed accounts, first touched first
	txs      []*chain.Transaction
	st       counters
}

var emptyAccount = cell.BeginCell().MustStoreBoolBit(false).EndCell() // account_none$0

var errSimulatedCrash = errors.New("local: simulated crash")

// apply journals, runs and commits one input. The first transaction returned is the one the inbound
// message itself caused. Callers hold mu for writing.
func (c *Chain) apply(in input) (*chain.Transaction, error) {
	seq := c.seq + 1
	o, err := c.run(seq, in)
	if err != nil {
		return nil, err
	}
	if err := c.store.append(&record{Seq: seq, In: &inRecord{Msg: in.Msg.ToBOC(), Now: in.Now, Mint: in.Mint}}); err != nil {
		return nil, c.fail(err)
	}
	c.seq = seq
	if c.crashed("journaled") {
		return nil, c.fail(errSimulatedCrash)
	}
	if err := c.store.append(&record{Seq: seq + 1, Done: o.record(seq)}); err != nil {
		return nil, c.fail(err)
	}
	c.seq = seq + 1
	c.commit(o)
	c.sinceSnap++
	if c.sinceSnap >= c.opts.SnapshotEvery {
		if err := c.snapshot(); err != nil {
			return nil, c.fail(err)
		}
	}
	return o.txs[0], nil
}

// crashed reports whether a test asked to be killed at step.
func (c *Chain) crashed(step string) bool { return c.crash != nil && c.crash(step) }

// fail stops the chain after a write failed (or a simulated crash): what is on disk is recovered by the
// next Open, and going on could interleave a half-applied message with later ones.
func (c *Chain) fail(err error) error {
	c.log.Error("local chain stopped: state on disk is recovered by the next open", "err", err)
	c.closed = true
	close(c.changed)
	c.store.close()
	return fmt.Errorf("local: %w", err)
}

// run applies in and the messages it causes, breadth first, to a copy of the changed accounts.
func (c *Chain) run(seq uint64, in input) (*outcome, error) {
	block, err := c.cfg.NewBlockContext(tvm.BlockOptions{Now: in.Now, RandSeed: blockSeed(seq, in.Msg)})
	if err != nil {
		return nil, fmt.Errorf("local: block: %w", err)
	}
	o := &outcome{accounts: map[string]*account{}, st: c.st}
	o.st.Now = in.Now
	o.st.Minted += in.Mint

	queue := []*cell.Cell{in.Msg}
	for n := 0; len(queue) > 0; n++ {
		if n == maxCascade {
			return nil, fmt.Errorf("local: message %x causes more than %d transactions", in.Msg.Hash(), maxCascade)
		}
		mc := queue[0]
		queue = queue[1:]
		pm, err := tvm.PrepareMessage(mc)
		if err != nil {
			return nil, fmt.Errorf("local: message %x: %w", mc.Hash(), err)
		}
		dst, err := destination(pm.Message())
		if err != nil {
			return nil, err
		}
		key := dst.StringRaw()
		prev := o.accounts[key]
		if prev == nil {
			prev = c.accounts[key]
		}
		var acc *tvm.PreparedAccount
		if prev != nil {
			acc = prev.prep
		} else if acc, err = tvm.PrepareAccount(&tlb.ShardAccount{Account: emptyAccount, LastTransHash: make([]byte, 32)}, dst); err != nil {
			return nil, fmt.Errorf("local: account %s: %w", key, err)
		}

		res, err := c.vm.EmulateTransaction(block, acc, pm, tvm.TransactionOptions{LogicalTime: int64(o.st.LT)})
		if err != nil && pm.Message().MsgType == tlb.MsgTypeExternalIn {
			return nil, fmt.Errorf("%w: %s: %w", chain.ErrRejected, key, err) // as a liteserver would
		}
		if err != nil {
			return nil, fmt.Errorf("local: transaction of %s: %w", key, err)
		}
		if res.TransactionCell == nil { // only an external message can be refused
			return nil, fmt.Errorf("%w: %s did not accept it (exit code %d)", chain.ErrRejected, key, res.ExitCode)
		}
		tx, err := chain.ParseTransaction(dst.Workchain(), res.TransactionCell)
		if err != nil {
			return nil, err
		}
		next, err := newAccount(dst, res.NextAccount)
		if err != nil {
			return nil, err
		}
		if prev = o.accounts[key]; prev != nil {
			next.txs = append(prev.txs, tx)
		} else {
			next.txs = []*chain.Transaction{tx}
			o.order = append(o.order, key)
		}
		o.accounts[key] = next
		o.txs = append(o.txs, tx)

		if res.EndLT > o.st.LT {
			o.st.LT = res.EndLT
		}
		o.st.Fees += tx.Fees
		o.st.Transactions++
		for _, m := range tx.Out {
			if m.Type == tlb.MsgTypeInternal {
				o.st.FwdFees += m.FwdFee
				queue = append(queue, m.Cell)
			}
		}
	}
	return o, nil
}

// destination is where an inbound message goes; only standard addresses hold accounts.
func destination(m *tlb.Message) (*address.Address, error) {
	var dst *address.Address
	switch m.MsgType {
	case tlb.MsgTypeInternal:
		dst = m.AsInternal().DstAddr
	case tlb.MsgTypeExternalIn:
		dst = m.AsExternalIn().DstAddr
	}
	if dst == nil || dst.Type() != address.StdAddress || dst.Anycast() != nil {
		return nil, fmt.Errorf("local: message to %v: not a standard address", dst)
	}
	return dst, nil
}

func newAccount(addr *address.Address, prep *tvm.PreparedAccount) (*account, error) {
	sa := prep.ShardAccount()
	st, err := chain.ParseAccount(addr, sa.Account, sa.LastTransLT, sa.LastTransHash)
	if err != nil {
		return nil, err
	}
	return &account{addr: addr, prep: prep, state: st}, nil
}

// commit publishes an outcome. Callers hold mu for writing.
func (c *Chain) commit(o *outcome) {
	for _, key := range o.order {
		next := o.accounts[key]
		if prev := c.accounts[key]; prev != nil {
			// Appending may write past prev's length in a shared array; prev's readers never look there.
			next.txs = append(prev.txs, next.txs...)
		}
		c.accounts[key] = next
	}
	c.st = o.st
	close(c.changed)
	c.changed = make(chan struct{})
}

// RunGetMethod runs a get-method on the current state of addr, with GetMethodGas gas.
func (c *Chain) RunGetMethod(_ context.Context, addr *address.Address, method string, args ...any) ([]any, error) {
	// The same normalisation a served chain's arguments go through, so both behave alike.
	sc, err := chain.MarshalStack(args)
	if err != nil {
		return nil, err
	}
	vals, err := chain.UnmarshalStack(sc)
	if err != nil {
		return nil, err
	}
	return c.runGetMethod(addr, method, vals)
}

func (c *Chain) runGetMethod(addr *address.Address, method string, args []any) ([]any, error) {
	c.mu.RLock()
	a, closed, now, lt := c.accounts[addr.StringRaw()], c.closed, c.unixNow(), c.st.LT
	c.mu.RUnlock()
	if closed {
		return nil, ErrClosed
	}
	if a == nil || !a.state.Active() {
		return nil, fmt.Errorf("local: get-method %s of %s: %w", method, addr.StringRaw(), chain.ErrNotActive)
	}

	stack := vm.NewStack()
	for _, v := range args {
		hv, err := toVM(v)
		if err != nil {
			return nil, fmt.Errorf("local: get-method %s argument: %w", method, err)
		}
		if err := stack.PushHostValue(hv); err != nil {
			return nil, fmt.Errorf("local: get-method %s argument: %w", method, err)
		}
	}
	if err := stack.PushInt(new(big.Int).SetUint64(tlb.MethodNameHash(method))); err != nil {
		return nil, err
	}
	block, err := c.cfg.NewBlockContext(tvm.BlockOptions{Now: now})
	if err != nil {
		return nil, fmt.Errorf("local: block: %w", err)
	}
	res, err := tvm.NewTVM().ExecuteGetMethod(a.state.Code, a.state.Data, getMethodC7(block, a, lt), vm.GasWithLimit(GetMethodGas), stack, tvm.ExecutionConfig{Config: c.cfg})
	if err != nil {
		return nil, fmt.Errorf("local: get-method %s of %s: %w", method, addr.StringRaw(), err)
	}
	if !vm.IsSuccessExitCode(res.ExitCode) {
		return nil, &chain.ExitError{Method: method, Code: res.ExitCode}
	}
	out := make([]any, res.Stack.Len())
	for i := len(out) - 1; i >= 0; i-- {
		v, err := res.Stack.PopAny()
		if err != nil {
			return nil, err
		}
		if out[i], err = fromVM(v); err != nil {
			return nil, fmt.Errorf("local: get-method %s result %d: %w", method, i, err)
		}
	}
	return out, nil
}

// getMethodC7 is the c7 register of a get-method, as TON's liteserver builds it (global version 11+):
// no inbound message, the account's balance, code and address, the config and its unpacked form.
func getMethodC7(block *tvm.BlockContext, a *account, lt uint64) tuple.Tuple {
	zero := func() *big.Int { return big.NewInt(0) }
	unpacked, _ := block.UnpackedConfig()
	params := []any{
		big.NewInt(0x076ef1ea), zero(), zero(), // magic, actions, messages sent
		big.NewInt(int64(block.Now())), big.NewInt(int64(lt)), big.NewInt(int64(lt)), // now, block lt, lt
		zero(), // random seed
		tuple.NewTupleValue(new(big.Int).SetUint64(a.state.Balance), nil),
		cell.BeginCell().MustStoreAddr(a.addr).ToSlice(),
		block.Config().Root(),
		a.state.Code,
		tuple.NewTupleValue(zero(), nil), // inbound value
		zero(),                           // storage fees
		nil,                              // previous blocks
		unpacked,
		zero(), // due payment
		nil,    // precompiled gas usage
		tuple.NewTupleValue(zero(), zero(), cell.BeginCell().MustStoreUInt(0, 2).ToSlice(), // inbound message parameters: none
			zero(), zero(), zero(), zero(), zero(), nil, nil),
	}
	return tuple.NewTupleValue(tuple.NewTupleOwned(params))
}

// toVM turns a stack value as chain.UnmarshalStack returns it into the TVM's representation.
func toVM(v any) (any, error) {
	switch v := v.(type) {
	case nil, *big.Int, *cell.Cell, *cell.Slice, *cell.Builder:
		return v, nil
	case tlb.StackNaN:
		return vm.NaN{}, nil
	case []any:
		t := make([]any, len(v))
		for i, e := range v {
			var err error
			if t[i], err = toVM(e); err != nil {
				return nil, err
			}
		}
		return tuple.NewTupleOwned(t), nil
	}
	return nil, fmt.Errorf("unsupported stack value %T", v)
}

// fromVM is the inverse of toVM.
func fromVM(v any) (any, error) {
	switch v := v.(type) {
	case nil, *big.Int, *cell.Cell, *cell.Slice, *cell.Builder:
		return v, nil
	case vm.NaN:
		return tlb.StackNaN{}, nil
	case tuple.Tuple:
		out := make([]any, v.Len())
		for i := range out {
			e, err := v.RawIndex(i)
			if err != nil {
				return nil, err
			}
			if out[i], err = fromVM(e); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("unsupported stack value %T", v)
}
