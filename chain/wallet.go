package chain

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"math/big"
	"time"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/ton/wallet"
	"github.com/xssnick/tonutils-go/tvm/cell"
)

// Message modes of an outbound transfer (the SENDRAWMSG mode byte).
const (
	ModePayFeesSeparately = 1   // the sender pays forwarding fees on top of the value
	ModeIgnoreErrors      = 2   // a failing transfer is skipped instead of failing the action phase
	ModeCarryInbound      = 64  // carry the remaining value of the inbound message
	ModeCarryBalance      = 128 // carry the whole balance
)

// Transfer is one internal message a Wallet sends.
type Transfer struct {
	To        *address.Address
	Amount    uint64 // nanoTON
	Bounce    bool   // bounce back if the receiver fails (set it for contracts, not for fresh wallets)
	Body      *cell.Cell
	StateInit *tlb.StateInit // deploys a contract at To; To must be its address (see StateInitAddress)
	Mode      uint8          // 0 means ModePayFeesSeparately|ModeIgnoreErrors
}

// Wallet is a V5R1 wallet contract controlled by one Ed25519 key, sending through any Chain.
// A Wallet does not serialize its own sends: use one goroutine per Wallet (each send uses the next seqno).
type Wallet struct {
	chain Chain
	key   ed25519.PrivateKey
	id    uint32
	init  *tlb.StateInit
	addr  *address.Address

	// TTL is how long a signed message stays valid, from the chain's Now. Default 3 minutes.
	TTL time.Duration
}

// NewWallet returns the V5R1 wallet (workchain 0, subwallet 0) of key on c. The address depends on
// c.GlobalID, so one key has different wallets on the local chain, testnet and mainnet.
func NewWallet(c Chain, key ed25519.PrivateKey) (*Wallet, error) {
	cfg := wallet.ConfigV5R1Final{NetworkGlobalID: c.GlobalID(), Workchain: 0}
	init, err := wallet.GetStateInit(key.Public().(ed25519.PublicKey), cfg, 0)
	if err != nil {
		return nil, fmt.Errorf("chain: wallet state init: %w", err)
	}
	addr, err := StateInitAddress(0, init)
	if err != nil {
		return nil, err
	}
	id := wallet.V5R1ID{NetworkGlobalID: c.GlobalID(), WorkChain: 0}.Serialized()
	return &Wallet{chain: c, key: key, id: id, init: init, addr: addr, TTL: 3 * time.Minute}, nil
}

// StateInitAddress is the address of the contract that init deploys in workchain wc.
func StateInitAddress(wc int8, init *tlb.StateInit) (*address.Address, error) {
	c, err := tlb.ToCell(init)
	if err != nil {
		return nil, fmt.Errorf("chain: state init: %w", err)
	}
	return address.NewAddress(0, byte(wc), c.Hash()), nil
}

// Address is the wallet's address (bounceable form; send it value with Bounce false until it is deployed).
func (w *Wallet) Address() *address.Address { return w.addr }

// StateInit is the wallet contract's code and initial data.
func (w *Wallet) StateInit() *tlb.StateInit { return w.init }

// Chain is the chain the wallet sends through.
func (w *Wallet) Chain() Chain { return w.chain }

// Balance is the wallet's balance in nanoTON.
func (w *Wallet) Balance(ctx context.Context) (uint64, error) {
	acc, err := w.chain.Account(ctx, w.addr)
	if err != nil {
		return 0, err
	}
	return acc.Balance, nil
}

// Seqno is the sequence number the next message must carry: 0 before the wallet is deployed.
func (w *Wallet) Seqno(ctx context.Context) (uint32, error) {
	acc, err := w.chain.Account(ctx, w.addr)
	if err != nil {
		return 0, err
	}
	return w.seqno(ctx, acc)
}

func (w *Wallet) seqno(ctx context.Context, acc *Account) (uint32, error) {
	if !acc.Active() {
		return 0, nil
	}
	res, err := w.chain.RunGetMethod(ctx, w.addr, "seqno")
	if err != nil {
		return 0, fmt.Errorf("chain: wallet %s seqno: %w", w.addr, err)
	}
	if len(res) != 1 {
		return 0, fmt.Errorf("chain: wallet %s seqno: %d results", w.addr, len(res))
	}
	n, ok := res[0].(*big.Int)
	if !ok || !n.IsUint64() || n.Uint64() > 0xffffffff {
		return 0, fmt.Errorf("chain: wallet %s seqno: bad value %v", w.addr, res[0])
	}
	return uint32(n.Uint64()), nil
}

// Message builds the signed external message that makes the wallet send transfers: with the wallet's
// StateInit if it is not deployed yet, seqno as given and valid until validUntil.
func (w *Wallet) Message(transfers []Transfer, seqno uint32, validUntil time.Time, deploy bool) (*cell.Cell, error) {
	if len(transfers) > 255 {
		return nil, fmt.Errorf("chain: %d transfers, a V5R1 wallet sends at most 255", len(transfers))
	}
	msgs := make([]*wallet.Message, len(transfers))
	for i, t := range transfers {
		mode := t.Mode
		if mode == 0 {
			mode = ModePayFeesSeparately | ModeIgnoreErrors
		}
		msgs[i] = &wallet.Message{Mode: mode, InternalMessage: &tlb.InternalMessage{
			IHRDisabled: true,
			Bounce:      t.Bounce,
			DstAddr:     t.To,
			Amount:      Coins(t.Amount),
			StateInit:   t.StateInit,
			Body:        t.Body,
		}}
	}
	actions, err := wallet.PackV5OutActions(msgs)
	if err != nil {
		return nil, fmt.Errorf("chain: wallet actions: %w", err)
	}
	payload := cell.BeginCell().
		MustStoreUInt(0x7369676e, 32). // "sign": a signed external request
		MustStoreUInt(uint64(w.id), 32).
		MustStoreUInt(uint64(validUntil.Unix()), 32).
		MustStoreUInt(uint64(seqno), 32).
		MustStoreBuilder(actions)
	body := cell.BeginCell().
		MustStoreBuilder(payload).
		MustStoreSlice(payload.EndCell().Sign(w.key), 512).
		EndCell()
	ext := &tlb.ExternalMessage{DstAddr: w.addr, Body: body}
	if deploy {
		ext.StateInit = w.init
	}
	c, err := tlb.ToCell(ext)
	if err != nil {
		return nil, fmt.Errorf("chain: wallet message: %w", err)
	}
	return c, nil
}

// Send signs transfers with the next seqno, sends them (deploying the wallet on its first send) and waits
// for the wallet's transaction, which it returns. That transaction only shows the wallet's side: the
// transfers arrive in later transactions of their receivers (see Trace).
func (w *Wallet) Send(ctx context.Context, transfers ...Transfer) (*Transaction, error) {
	acc, err := w.chain.Account(ctx, w.addr)
	if err != nil {
		return nil, err
	}
	seqno, err := w.seqno(ctx, acc)
	if err != nil {
		return nil, err
	}
	now, err := w.chain.Now(ctx)
	if err != nil {
		return nil, err
	}
	msg, err := w.Message(transfers, seqno, now.Add(w.TTL), !acc.Active())
	if err != nil {
		return nil, err
	}
	if err := w.chain.SendExternal(ctx, msg); err != nil {
		return nil, fmt.Errorf("chain: wallet %s send: %w", w.addr, err)
	}
	tx, err := WaitMessage(ctx, w.chain, w.addr, acc.LastLT, msg.Hash())
	if err != nil {
		return nil, fmt.Errorf("chain: wallet %s: %w", w.addr, err)
	}
	if tx.Aborted {
		return tx, fmt.Errorf("%w: wallet %s transaction %d (exit code %d, action code %d)", ErrAborted, w.addr, tx.LT, tx.ExitCode, tx.ActionCode)
	}
	return tx, nil
}

// WaitMessage waits for the transaction of addr, after afterLT, whose inbound message has the given hash.
func WaitMessage(ctx context.Context, c Chain, addr *address.Address, afterLT uint64, msgHash []byte) (*Transaction, error) {
	for {
		tx, err := c.WaitTransaction(ctx, addr, afterLT)
		if err != nil {
			return nil, err
		}
		if tx.In != nil && bytes.Equal(tx.In.Hash, msgHash) {
			return tx, nil
		}
		afterLT = tx.LT
	}
}

// Trace waits for the transactions that tx's outbound internal messages cause, and theirs, breadth first,
// and returns them in that order (tx itself not included). It returns when every message has landed,
// so it does not return for a message that never arrives before ctx is done.
func Trace(ctx context.Context, c Chain, tx *Transaction) ([]*Transaction, error) {
	var out []*Transaction
	queue := []*Transaction{tx}
	for len(queue) > 0 {
		t := queue[0]
		queue = queue[1:]
		for _, m := range t.Out {
			if m.Type != tlb.MsgTypeInternal {
				continue
			}
			next, err := WaitMessage(ctx, c, m.Dst, m.CreatedLT, m.Hash)
			if err != nil {
				return out, fmt.Errorf("chain: trace %x: %w", m.Hash, err)
			}
			out = append(out, next)
			queue = append(queue, next)
		}
	}
	return out, nil
}
