package chain

import (
	"fmt"
	"sort"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/tvm/cell"
)

// Transaction is one transaction of one account, with the facts callers branch on pulled out of the
// TL-B structure. Cell is the transaction itself, byte for byte as the chain stores it.
type Transaction struct {
	Address  *address.Address
	LT       uint64 // logical time
	Hash     []byte
	PrevLT   uint64 // logical time of the account's previous transaction, 0 if none
	PrevHash []byte // hash of the account's previous transaction
	Now      uint32 // unix time the transaction was executed at

	In  *Message   // the inbound message, nil for none
	Out []*Message // outbound messages in creation order, a bounce included

	Fees uint64 // total fees the account paid, nanoTON

	// Aborted is set when the compute or action phase failed (then nothing but fees and a bounce happened).
	Aborted bool
	// ComputeSkipped says why the compute phase did not run ("" when it ran): "NO_STATE", "NO_GAS", ...
	ComputeSkipped string
	ExitCode       int32 // compute phase exit code (0 when skipped)
	ActionCode     int32 // action phase result code (0 when there was no action phase or it succeeded)
	Bounced        bool  // the transaction sent a bounce back to the inbound message's sender

	EndStatus tlb.AccountStatus // account status after the transaction

	Cell *cell.Cell
}

// Message is one message, inbound or outbound.
type Message struct {
	Type      tlb.MsgType // tlb.MsgTypeInternal, tlb.MsgTypeExternalIn or tlb.MsgTypeExternalOut
	Hash      []byte      // hash of Cell; how a message is found again
	Src       *address.Address
	Dst       *address.Address
	Value     uint64 // nanoTON carried (internal messages)
	FwdFee    uint64 // forwarding fee still carried by the message, paid to validators on delivery
	Bounce    bool   // bounce back if the receiver fails
	Bounced   bool   // this is a bounce
	CreatedLT uint64
	StateInit *tlb.StateInit
	Body      *cell.Cell // nil or the body cell
	Cell      *cell.Cell
}

// ParseTransaction parses a transaction cell of an account in workchain wc (the cell itself carries only
// the 256-bit account id).
func ParseTransaction(wc int32, c *cell.Cell) (*Transaction, error) {
	var tx tlb.Transaction
	if err := tlb.Parse(&tx, c); err != nil {
		return nil, fmt.Errorf("chain: parse transaction: %w", err)
	}
	fees, err := nano(tx.TotalFees.Coins)
	if err != nil {
		return nil, fmt.Errorf("chain: transaction fees: %w", err)
	}
	t := &Transaction{
		Address:   address.NewAddress(0, byte(wc), tx.AccountAddr),
		LT:        tx.LT,
		Hash:      c.Hash(),
		PrevLT:    tx.PrevTxLT,
		PrevHash:  tx.PrevTxHash,
		Now:       tx.Now,
		Fees:      fees,
		EndStatus: tx.EndStatus,
		Cell:      c,
	}

	io, err := c.PeekRef(0)
	if err != nil {
		return nil, fmt.Errorf("chain: transaction messages: %w", err)
	}
	ios := io.MustBeginParse()
	if hasIn, _ := ios.LoadBoolBit(); hasIn {
		in, err := ios.LoadRefCell()
		if err != nil {
			return nil, fmt.Errorf("chain: transaction inbound message: %w", err)
		}
		if t.In, err = ParseMessage(in); err != nil {
			return nil, err
		}
	}
	if tx.IO.Out != nil && tx.IO.Out.List != nil {
		kvs, err := tx.IO.Out.List.LoadAll()
		if err != nil {
			return nil, fmt.Errorf("chain: transaction outbound messages: %w", err)
		}
		idx := make([]uint64, len(kvs))
		for i, kv := range kvs {
			k, err := kv.Key.Copy().LoadUInt(15)
			if err != nil {
				return nil, fmt.Errorf("chain: outbound message key: %w", err)
			}
			idx[i] = k
		}
		sort.Slice(kvs, func(i, j int) bool { return idx[i] < idx[j] })
		for _, kv := range kvs {
			mc, err := kv.Value.LoadRefCell()
			if err != nil {
				return nil, fmt.Errorf("chain: outbound message: %w", err)
			}
			m, err := ParseMessage(mc)
			if err != nil {
				return nil, err
			}
			t.Out = append(t.Out, m)
		}
	}

	if d, ok := tx.Description.(tlb.TransactionDescriptionOrdinary); ok {
		t.Aborted = d.Aborted
		switch p := d.ComputePhase.Phase.(type) {
		case tlb.ComputePhaseVM:
			t.ExitCode = p.Details.ExitCode
		case tlb.ComputePhaseSkipped:
			t.ComputeSkipped = string(p.Reason.Type)
		}
		if d.ActionPhase != nil {
			t.ActionCode = d.ActionPhase.ResultCode
		}
		if d.BouncePhase != nil {
			_, t.Bounced = d.BouncePhase.Phase.(tlb.BouncePhaseOk)
		}
	}
	return t, nil
}

// ParseMessage parses a Message cell.
func ParseMessage(c *cell.Cell) (*Message, error) {
	var msg tlb.Message
	if err := tlb.Parse(&msg, c); err != nil {
		return nil, fmt.Errorf("chain: parse message: %w", err)
	}
	m := &Message{Type: msg.MsgType, Hash: c.Hash(), Cell: c}
	switch v := msg.Msg.(type) {
	case *tlb.InternalMessage:
		value, err := nano(v.Amount)
		if err != nil {
			return nil, fmt.Errorf("chain: message value: %w", err)
		}
		fwd, err := nano(v.FwdFee)
		if err != nil {
			return nil, fmt.Errorf("chain: message forwarding fee: %w", err)
		}
		m.Src, m.Dst, m.Value, m.FwdFee = v.SrcAddr, v.DstAddr, value, fwd
		m.Bounce, m.Bounced, m.CreatedLT = v.Bounce, v.Bounced, v.CreatedLT
		m.StateInit, m.Body = v.StateInit, v.Body
	case *tlb.ExternalMessage:
		m.Src, m.Dst, m.StateInit, m.Body = v.SrcAddr, v.DstAddr, v.StateInit, v.Body
	case *tlb.ExternalMessageOut:
		m.Src, m.Dst, m.CreatedLT, m.StateInit, m.Body = v.SrcAddr, v.DstAddr, v.CreatedLT, v.StateInit, v.Body
	}
	return m, nil
}
