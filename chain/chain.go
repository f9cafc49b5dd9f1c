// Package chain is what Cocoon needs from a blockchain: account state, get-methods, external messages,
// transaction waiting and history, with one interface for the embedded local chain (package chain/local)
// and for TON.
//
// Amounts are integer nanoTON. Cells, addresses and get-method stack values are those of
// github.com/xssnick/tonutils-go, so messages built for one back end are the same bytes on the other.
package chain

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/tvm/cell"
)

// Chain is one blockchain: the local chain or TON. Implementations are safe for concurrent use.
type Chain interface {
	// Name says which chain this is: "local" for the embedded chain, "ton:testnet" or "ton:mainnet".
	Name() string

	// GlobalID is the network's global id (config parameter 19); V5R1 wallets sign it into every message,
	// so a message signed for one network is refused by the others.
	GlobalID() int32

	// Now is the chain's current time, the time contracts see (and check message expiry against).
	Now(ctx context.Context) (time.Time, error)

	// Account returns the state of addr. An address nothing has ever touched is an Account with status
	// tlb.AccountStatusNonExist and a zero balance, not an error.
	Account(ctx context.Context, addr *address.Address) (*Account, error)

	// RunGetMethod runs a get-method of the contract at addr on its current state. Arguments and results
	// are tonutils-go stack values (see MarshalStack); results come in the order the method returns them.
	// A non-zero exit code is an *ExitError; an account without code is ErrNotActive.
	RunGetMethod(ctx context.Context, addr *address.Address, method string, args ...any) ([]any, error)

	// SendExternal sends a signed external inbound message (a Message cell, as a wallet builds it).
	// It returns once the chain has taken the message; the transaction it causes is found with
	// WaitTransaction. A message the contract does not accept is ErrRejected.
	SendExternal(ctx context.Context, msg *cell.Cell) error

	// WaitTransaction returns the first transaction of addr with a logical time above afterLT, waiting
	// for it until ctx is done (then the error wraps ctx.Err(): use context.WithTimeout for a timeout).
	WaitTransaction(ctx context.Context, addr *address.Address, afterLT uint64) (*Transaction, error)

	// Transactions returns up to limit transactions of addr with a logical time below beforeLT
	// (0: from the newest), newest first.
	Transactions(ctx context.Context, addr *address.Address, beforeLT uint64, limit int) ([]*Transaction, error)
}

// Faucet credits addresses with value out of thin air. Only test chains have one (the local chain does).
type Faucet interface {
	// Fund credits amount nanoTON to addr with a non-bouncing internal message from the faucet and
	// returns the transaction it caused on addr.
	Fund(ctx context.Context, addr *address.Address, amount uint64) (*Transaction, error)
}

// Account is the state of one address.
type Account struct {
	Address  *address.Address
	Status   tlb.AccountStatus // tlb.AccountStatusActive, ...Uninit, ...Frozen or ...NonExist
	Balance  uint64            // nanoTON
	Code     *cell.Cell        // nil unless active
	Data     *cell.Cell        // nil unless active
	LastLT   uint64            // logical time of the last transaction, 0 if none
	LastHash []byte            // hash of the last transaction, nil if none
}

// Active reports whether the account has code and data.
func (a *Account) Active() bool { return a.Status == tlb.AccountStatusActive }

var (
	// ErrNotActive is returned for a get-method on an account that has no code (uninit, frozen or nonexistent).
	ErrNotActive = errors.New("chain: account is not active")
	// ErrRejected is returned for an external message that the chain refused: malformed, or not accepted
	// by the destination contract.
	ErrRejected = errors.New("chain: external message rejected")
	// ErrAborted is wrapped by Wallet.Send when the wallet's own transaction was aborted.
	ErrAborted = errors.New("chain: transaction aborted")
)

// ExitError is a get-method that ended with an exit code other than 0 or 1.
type ExitError struct {
	Method string
	Code   int64
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("chain: get-method %s: exit code %d", e.Method, e.Code)
}

// ParseAccount turns a ShardAccount's account cell (the TL-B Account) into an Account.
func ParseAccount(addr *address.Address, account *cell.Cell, lastLT uint64, lastHash []byte) (*Account, error) {
	var st tlb.AccountState
	if err := tlb.Parse(&st, account); err != nil {
		return nil, fmt.Errorf("chain: parse account %s: %w", addr.StringRaw(), err)
	}
	a := &Account{Address: addr, Status: tlb.AccountStatusNonExist}
	if !st.IsValid {
		return a, nil
	}
	bal, err := nano(st.Balance)
	if err != nil {
		return nil, fmt.Errorf("chain: account %s: %w", addr.StringRaw(), err)
	}
	a.Status, a.Balance, a.LastLT = st.Status, bal, lastLT
	if lastLT != 0 {
		a.LastHash = lastHash
	}
	if st.Status == tlb.AccountStatusActive && st.StateInit != nil {
		a.Code, a.Data = st.StateInit.Code, st.StateInit.Data
	}
	return a, nil
}

// nano converts coins to nanoTON; values beyond uint64 (more than all Toncoin there is) are an error.
func nano(c tlb.Coins) (uint64, error) {
	n := c.Nano()
	if n.Sign() < 0 || !n.IsUint64() {
		return 0, fmt.Errorf("amount %s nanoTON does not fit in uint64", n)
	}
	return n.Uint64(), nil
}

// Coins returns amount nanoTON as tlb.Coins, for building messages.
func Coins(amount uint64) tlb.Coins {
	return tlb.FromNanoTONU(amount)
}
