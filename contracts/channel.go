package contracts

import (
	"crypto/ed25519"
	"fmt"
	"math"
	"time"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/tvm/cell"
)

// Opcodes of the messages the channel accepts and sends.
const (
	OpTopUp       uint32 = 0x636f6e01 // payer → channel: credit an amount to the deposit
	OpClaim       uint32 = 0x636f6e02 // payee → channel: claim with a signed voucher
	OpStartClose  uint32 = 0x636f6e03 // payer → channel: start the close delay
	OpFinishClose uint32 = 0x636f6e04 // payer → channel: take back what is left
	OpPayout      uint32 = 0x636f6e81 // channel → payee: a claim's payout
	OpRefund      uint32 = 0x636f6e82 // channel → payer: everything left, on finish close
)

// Exit codes with which the channel refuses a message.
const (
	ExitNotPayer          = 101 // top-up, start close or finish close not from the payer
	ExitNotPayee          = 102 // claim not from the payee
	ExitWrongChannel      = 103 // the voucher is for another channel
	ExitBadSignature      = 104 // the voucher is not signed by the payer's key
	ExitStaleSeqno        = 105 // the voucher's seqno is not above the last claimed (stale or replayed)
	ExitTotalBelowClaimed = 106 // the voucher's total is below what was already paid out
	ExitTotalAboveDeposit = 107 // the voucher's total is above the deposit
	ExitClosed            = 108 // the channel is closed: nothing more is accepted
	ExitNotOpen           = 109 // top-up or start close while the channel is closing
	ExitNotClosing        = 110 // finish close before a close was started
	ExitTooEarly          = 111 // finish close before the close delay has passed
	ExitLowValue          = 112 // a top-up carrying less than its amount plus TopUpReserve
	ExitBadVoucherTag     = 63  // Tolk's code for a struct whose opcode prefix does not match
	ExitUnknownOp         = 0xFFFF
)

// TopUpReserve is what a top-up must carry on top of the amount it credits. It pays the
// top-up's gas and stays in the channel as a reserve for storage fees; what is left of it
// is returned to the payer when the channel closes.
const TopUpReserve uint64 = 10_000_000

// Channel get-methods.
const (
	GetChannelState = "get_channel_state"
	GetChannelID    = "get_channel_id"
)

// ChannelConfig is what fixes a channel, and so its address.
type ChannelConfig struct {
	Payer, Payee       *address.Address
	PayerKey, PayeeKey ed25519.PublicKey // PayerKey signs vouchers; PayeeKey identifies the payee off chain
	// Nonce lets the same parties open several channels: each nonce gives another address.
	Nonce uint64
	// CloseDelay is how long the payee has to claim after the payer starts a close; whole
	// seconds.
	CloseDelay time.Duration
}

func (c ChannelConfig) validate() error {
	if c.Payer == nil || c.Payer.Type() != address.StdAddress || c.Payee == nil || c.Payee.Type() != address.StdAddress {
		return fmt.Errorf("contracts: channel payer and payee must be standard addresses")
	}
	if len(c.PayerKey) != ed25519.PublicKeySize || len(c.PayeeKey) != ed25519.PublicKeySize {
		return fmt.Errorf("contracts: channel keys must be %d-byte Ed25519 public keys", ed25519.PublicKeySize)
	}
	if _, err := seconds(c.CloseDelay); err != nil {
		return fmt.Errorf("contracts: channel close delay: %w", err)
	}
	return nil
}

// seconds converts a delay to the whole seconds the contracts store.
func seconds(d time.Duration) (uint32, error) {
	if d < 0 || d%time.Second != 0 || d/time.Second > math.MaxUint32 {
		return 0, fmt.Errorf("%v is not a whole number of seconds in [0, 2^32)", d)
	}
	return uint32(d / time.Second), nil
}

// Data is the channel's initial data cell: open, nothing deposited or claimed.
func (c ChannelConfig) Data() (*cell.Cell, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	delay, _ := seconds(c.CloseDelay)
	parties := cell.BeginCell().
		MustStoreAddr(c.Payer).
		MustStoreAddr(c.Payee).
		MustStoreSlice(c.PayeeKey, 256).
		EndCell()
	return cell.BeginCell().
		MustStoreUInt(uint64(ChannelOpen), 2).
		MustStoreUInt(0, 32). // closing since
		MustStoreUInt(uint64(delay), 32).
		MustStoreUInt(c.Nonce, 64).
		MustStoreCoins(0).    // deposit
		MustStoreCoins(0).    // claimed
		MustStoreUInt(0, 64). // seqno
		MustStoreSlice(c.PayerKey, 256).
		MustStoreRef(parties).
		EndCell(), nil
}

// StateInit is the channel's code and initial data, to deploy it.
func (c ChannelConfig) StateInit() (*tlb.StateInit, error) {
	data, err := c.Data()
	if err != nil {
		return nil, err
	}
	return stateInit(ChannelCode(), data), nil
}

// Address is where the channel lives in the basechain.
func (c ChannelConfig) Address() (*address.Address, error) {
	data, err := c.Data()
	if err != nil {
		return nil, err
	}
	return addressOf(ChannelCode(), data), nil
}

// ID is the channel id vouchers must carry: the account id of its address.
func (c ChannelConfig) ID() ([32]byte, error) {
	var id [32]byte
	addr, err := c.Address()
	if err != nil {
		return id, err
	}
	copy(id[:], addr.Data())
	return id, nil
}

// TopUpBody credits amount nanoTON to the deposit; the message must carry at least
// amount + TopUpReserve and come from the payer. Send it with the StateInit to deploy.
func TopUpBody(queryID, amount uint64) *cell.Cell {
	return header(OpTopUp, queryID).MustStoreCoins(amount).EndCell()
}

// ClaimBody claims with a signed voucher; the message must come from the payee and carry
// enough for the claim's gas and the payout's forwarding fee (ClaimValue is plenty). The
// payee gets the payout plus what is left of that value.
func ClaimBody(queryID uint64, sv SignedVoucher) *cell.Cell {
	return header(OpClaim, queryID).
		MustStoreSlice(sv.Signature[:], 512).
		MustStoreRef(sv.Cell()).
		EndCell()
}

// ClaimValue is a value to attach to a claim: enough for its gas and forwarding fee at
// today's prices with a wide margin. The unspent part comes back with the payout.
const ClaimValue uint64 = 50_000_000

// StartCloseBody starts the close delay; the message must come from the payer.
func StartCloseBody(queryID uint64) *cell.Cell {
	return header(OpStartClose, queryID).EndCell()
}

// FinishCloseBody ends a close whose delay has passed and sends the payer everything left
// in the channel; the message must come from the payer.
func FinishCloseBody(queryID uint64) *cell.Cell {
	return header(OpFinishClose, queryID).EndCell()
}

// ChannelStatus is where a channel is in its life.
type ChannelStatus uint8

// Channel statuses, as stored.
const (
	ChannelOpen    ChannelStatus = 0
	ChannelClosing ChannelStatus = 1
	ChannelClosed  ChannelStatus = 2
)

// String returns "open", "closing" or "closed".
func (s ChannelStatus) String() string {
	switch s {
	case ChannelOpen:
		return "open"
	case ChannelClosing:
		return "closing"
	case ChannelClosed:
		return "closed"
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// ChannelState is a channel's state as get_channel_state returns it.
type ChannelState struct {
	Status       ChannelStatus
	ClosingSince time.Time // zero while open
	CloseDelay   time.Duration
	Nonce        uint64
	Deposit      uint64 // nanoTON credited by top-ups
	Claimed      uint64 // nanoTON paid out to the payee
	Seqno        uint64 // seqno of the newest voucher claimed
	Payer, Payee *address.Address
	PayerKey     ed25519.PublicKey
	PayeeKey     ed25519.PublicKey
}

// Locked is what the channel still holds for the payee: deposit minus claimed.
func (s *ChannelState) Locked() uint64 { return s.Deposit - s.Claimed }

// ClosableAt is when the payer may finish a close that it has started.
func (s *ChannelState) ClosableAt() time.Time { return s.ClosingSince.Add(s.CloseDelay) }

// Config is the configuration the state says the channel was opened with. Only a state read from
// the account at Config's address can be trusted to be the channel's (see payments.Find).
func (s *ChannelState) Config() ChannelConfig {
	return ChannelConfig{Payer: s.Payer, Payee: s.Payee, PayerKey: s.PayerKey, PayeeKey: s.PayeeKey, Nonce: s.Nonce, CloseDelay: s.CloseDelay}
}

// ParseChannelState decodes the result of get_channel_state, values in the order the
// method returns them (as ton.ExecutionResult.AsTuple gives them).
func ParseChannelState(vals []any) (*ChannelState, error) {
	s := newStack(GetChannelState, vals, 11)
	st := &ChannelState{
		Status: ChannelStatus(s.uint(2)),
	}
	if since := s.uint(32); since != 0 {
		st.ClosingSince = time.Unix(int64(since), 0)
	}
	st.CloseDelay = time.Duration(s.uint(32)) * time.Second
	st.Nonce = s.uint(64)
	st.Deposit = s.uint(64)
	st.Claimed = s.uint(64)
	st.Seqno = s.uint(64)
	st.Payer = s.address()
	st.Payee = s.address()
	payerKey, payeeKey := s.bytes32(), s.bytes32()
	st.PayerKey, st.PayeeKey = payerKey[:], payeeKey[:]
	if s.err != nil {
		return nil, s.err
	}
	return st, nil
}

// ParseChannelData decodes a channel's data cell (its persistent storage) without running
// a get-method.
func ParseChannelData(data *cell.Cell) (*ChannelState, error) {
	st, err := parseChannelData(data)
	if err != nil {
		return nil, fmt.Errorf("%w: channel data: %v", ErrMalformed, err)
	}
	return st, nil
}

func parseChannelData(data *cell.Cell) (*ChannelState, error) {
	s, err := data.BeginParse()
	if err != nil {
		return nil, err
	}
	st := &ChannelState{}
	status, err := s.LoadUInt(2)
	if err != nil {
		return nil, err
	}
	st.Status = ChannelStatus(status)
	since, err := s.LoadUInt(32)
	if err != nil {
		return nil, err
	}
	if since != 0 {
		st.ClosingSince = time.Unix(int64(since), 0)
	}
	delay, err := s.LoadUInt(32)
	if err != nil {
		return nil, err
	}
	st.CloseDelay = time.Duration(delay) * time.Second
	if st.Nonce, err = s.LoadUInt(64); err != nil {
		return nil, err
	}
	if st.Deposit, err = loadCoins64(s); err != nil {
		return nil, err
	}
	if st.Claimed, err = loadCoins64(s); err != nil {
		return nil, err
	}
	if st.Seqno, err = s.LoadUInt(64); err != nil {
		return nil, err
	}
	if st.PayerKey, err = s.LoadSlice(256); err != nil {
		return nil, err
	}
	ref, err := s.LoadRef()
	if err != nil {
		return nil, err
	}
	if st.Payer, err = ref.LoadAddr(); err != nil {
		return nil, err
	}
	if st.Payee, err = ref.LoadAddr(); err != nil {
		return nil, err
	}
	if st.PayeeKey, err = ref.LoadSlice(256); err != nil {
		return nil, err
	}
	return st, nil
}

// loadCoins64 loads a Coins field that Cocoon keeps in uint64.
func loadCoins64(s *cell.Slice) (uint64, error) {
	n, err := s.LoadBigCoins()
	if err != nil {
		return 0, err
	}
	if n.BitLen() > 64 {
		return 0, fmt.Errorf("amount %v does not fit in uint64", n)
	}
	return n.Uint64(), nil
}

// ParseChannelID decodes the result of get_channel_id.
func ParseChannelID(vals []any) ([32]byte, error) {
	s := newStack(GetChannelID, vals, 1)
	id := s.bytes32()
	return id, s.err
}
