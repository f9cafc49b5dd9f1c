// Package ton is chain.Chain on TON itself, testnet or mainnet, through tonutils-go's liteclient: account
// states with proofs checked against the chain of masterchain blocks, get-methods run by liteservers,
// external messages sent byte for byte, and transactions found by walking an account's history back
// from its proven last transaction.
package ton

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/liteclient"
	"github.com/xssnick/tonutils-go/tl"
	"github.com/xssnick/tonutils-go/tlb"
	tonapi "github.com/xssnick/tonutils-go/ton"
	"github.com/xssnick/tonutils-go/tvm/cell"

	"github.com/cocoon-go/cocoon/chain"
)

// Global configs of the public networks, as Dial's config argument names them.
const (
	TestnetConfigURL = "https://ton-blockchain.github.io/testnet-global.config.json"
	MainnetConfigURL = "https://ton-blockchain.github.io/global.config.json"
)

// Options configures Dial. The zero value is usable.
type Options struct {
	// Poll is how often WaitTransaction asks for an account's state. Default 2 s (a block is about 3 s).
	Poll time.Duration
}

// Chain is TON, reached through liteservers. It implements chain.Chain.
type Chain struct {
	pool     *liteclient.ConnectionPool
	api      tonapi.APIClientWrapped
	name     string
	globalID int32
	poll     time.Duration
}

// Dial connects to the liteservers of a global config: "testnet", "mainnet", an http(s) URL or a file.
// The chain's name comes from the global id the network reports (config parameter 19).
func Dial(ctx context.Context, config string, opts *Options) (*Chain, error) {
	gc, err := globalConfig(ctx, config)
	if err != nil {
		return nil, err
	}
	pool := liteclient.NewConnectionPool()
	if err := pool.AddConnectionsFromConfig(ctx, gc); err != nil {
		return nil, fmt.Errorf("ton: connect to liteservers of %s: %w", config, err)
	}
	api := tonapi.NewAPIClient(pool, tonapi.ProofCheckPolicyFast).WithRetry()
	api.SetTrustedBlockFromConfig(gc)
	c := &Chain{pool: pool, api: api, poll: 2 * time.Second}
	if opts != nil && opts.Poll > 0 {
		c.poll = opts.Poll
	}
	block, err := api.CurrentMasterchainInfo(ctx)
	if err != nil {
		pool.Stop()
		return nil, fmt.Errorf("ton: masterchain info: %w", err)
	}
	bc, err := api.GetBlockchainConfig(ctx, block, 19)
	if err != nil {
		pool.Stop()
		return nil, fmt.Errorf("ton: config parameter 19: %w", err)
	}
	id, err := bc.GetGlobalID()
	if err != nil {
		pool.Stop()
		return nil, fmt.Errorf("ton: global id: %w", err)
	}
	c.globalID, c.name = id.GlobalID, networkName(id.GlobalID)
	return c, nil
}

func globalConfig(ctx context.Context, config string) (*liteclient.GlobalConfig, error) {
	src := configSource(config)
	var gc *liteclient.GlobalConfig
	var err error
	if strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://") {
		gc, err = liteclient.GetConfigFromUrl(ctx, src)
	} else {
		gc, err = liteclient.GetConfigFromFile(src)
	}
	if err != nil {
		return nil, fmt.Errorf("ton: global config %s: %w", src, err)
	}
	return gc, nil
}

// configSource resolves the network names to their global config URLs.
func configSource(config string) string {
	switch config {
	case "testnet":
		return TestnetConfigURL
	case "mainnet":
		return MainnetConfigURL
	}
	return config
}

// networkName names a network by its global id.
func networkName(id int32) string {
	switch id {
	case -239:
		return "ton:mainnet"
	case -3:
		return "ton:testnet"
	}
	return fmt.Sprintf("ton:%d", id)
}

// Close disconnects from the liteservers.
func (c *Chain) Close() error {
	c.pool.Stop()
	return nil
}

// Name returns "ton:mainnet", "ton:testnet" or "ton:<global id>".
func (c *Chain) Name() string { return c.name }

// GlobalID returns the network's global id.
func (c *Chain) GlobalID() int32 { return c.globalID }

// Now returns a liteserver's time.
func (c *Chain) Now(ctx context.Context) (time.Time, error) {
	now, err := c.api.GetTime(ctx)
	if err != nil {
		return time.Time{}, fmt.Errorf("ton: time: %w", err)
	}
	return time.Unix(int64(now), 0), nil
}

// Account returns the proven state of addr in the newest masterchain block.
func (c *Chain) Account(ctx context.Context, addr *address.Address) (*chain.Account, error) {
	block, err := c.api.CurrentMasterchainInfo(ctx)
	if err != nil {
		return nil, fmt.Errorf("ton: masterchain info: %w", err)
	}
	acc, err := c.api.WaitForBlock(block.SeqNo).GetAccount(ctx, block, addr)
	if err != nil {
		return nil, fmt.Errorf("ton: account %s: %w", addr.StringRaw(), err)
	}
	return account(addr, acc)
}

// account converts tonutils-go's account.
func account(addr *address.Address, acc *tlb.Account) (*chain.Account, error) {
	a := &chain.Account{Address: addr, Status: tlb.AccountStatusNonExist}
	if !acc.IsActive || acc.State == nil || !acc.State.IsValid {
		return a, nil
	}
	bal := acc.State.Balance.Nano()
	if !bal.IsUint64() {
		return nil, fmt.Errorf("ton: account %s: balance %s does not fit in uint64", addr.StringRaw(), bal)
	}
	a.Status, a.Balance, a.LastLT, a.LastHash = acc.State.Status, bal.Uint64(), acc.LastTxLT, acc.LastTxHash
	if a.Status == tlb.AccountStatusActive {
		a.Code, a.Data = acc.Code, acc.Data
	}
	return a, nil
}

// RunGetMethod runs a get-method on a liteserver, on the newest masterchain block.
func (c *Chain) RunGetMethod(ctx context.Context, addr *address.Address, method string, args ...any) ([]any, error) {
	block, err := c.api.CurrentMasterchainInfo(ctx)
	if err != nil {
		return nil, fmt.Errorf("ton: masterchain info: %w", err)
	}
	res, err := c.api.WaitForBlock(block.SeqNo).RunGetMethod(ctx, block, addr, method, args...)
	if err != nil {
		return nil, getMethodError(addr, method, err)
	}
	return res.AsTuple(), nil
}

// getMethodError gives a liteserver's get-method failure the errors of package chain.
func getMethodError(addr *address.Address, method string, err error) error {
	var exec tonapi.ContractExecError
	if errors.As(err, &exec) {
		if exec.Code == tonapi.ErrCodeContractNotInitialized {
			return fmt.Errorf("ton: get-method %s of %s: %w", method, addr.StringRaw(), chain.ErrNotActive)
		}
		return &chain.ExitError{Method: method, Code: int64(exec.Code)}
	}
	return fmt.Errorf("ton: get-method %s of %s: %w", method, addr.StringRaw(), err)
}

// SendExternal sends the message's bytes as they are to a liteserver, which checks that the contract
// accepts it before broadcasting it.
func (c *Chain) SendExternal(ctx context.Context, msg *cell.Cell) error {
	var resp tl.Serializable
	if err := c.api.Client().QueryLiteserver(ctx, tonapi.SendMessage{Body: msg.ToBOCWithFlags(false)}, &resp); err != nil {
		return fmt.Errorf("ton: send: %w", err)
	}
	return sendResult(resp)
}

func sendResult(resp tl.Serializable) error {
	switch r := resp.(type) {
	case tonapi.SendMessageStatus:
		if r.Status != 1 {
			return fmt.Errorf("%w: status %d", chain.ErrRejected, r.Status)
		}
		return nil
	case tonapi.LSError:
		return fmt.Errorf("%w: %w", chain.ErrRejected, r)
	}
	return fmt.Errorf("ton: send: unexpected answer %T", resp)
}

// WaitTransaction polls addr's state every Options.Poll until its last transaction is after afterLT, then
// returns the first transaction after afterLT.
func (c *Chain) WaitTransaction(ctx context.Context, addr *address.Address, afterLT uint64) (*chain.Transaction, error) {
	for {
		acc, err := c.Account(ctx, addr)
		if err != nil && ctx.Err() == nil {
			return nil, err
		}
		if err == nil && acc.LastLT > afterLT {
			var first *chain.Transaction
			err := c.walk(ctx, addr, acc.LastLT, acc.LastHash, func(tx *chain.Transaction) bool {
				if tx.LT <= afterLT {
					return false
				}
				first = tx
				return true
			})
			if err != nil {
				return nil, err
			}
			return first, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("ton: wait for a transaction of %s after lt %d: %w", addr.StringRaw(), afterLT, ctx.Err())
		case <-time.After(c.poll):
		}
	}
}

// Transactions returns up to limit transactions of addr below beforeLT, newest first. Liteservers list
// history backwards from a known transaction, so older pages cost a walk from the newest.
func (c *Chain) Transactions(ctx context.Context, addr *address.Address, beforeLT uint64, limit int) ([]*chain.Transaction, error) {
	acc, err := c.Account(ctx, addr)
	if err != nil {
		return nil, err
	}
	var out []*chain.Transaction
	if acc.LastLT == 0 || limit <= 0 {
		return out, nil
	}
	err = c.walk(ctx, addr, acc.LastLT, acc.LastHash, func(tx *chain.Transaction) bool {
		if beforeLT == 0 || tx.LT < beforeLT {
			out = append(out, tx)
		}
		return len(out) < limit
	})
	return out, err
}

// walk visits addr's transactions from (lt, hash) backwards, each checked to be the previous one's
// predecessor, while visit returns true.
func (c *Chain) walk(ctx context.Context, addr *address.Address, lt uint64, hash []byte, visit func(*chain.Transaction) bool) error {
	for lt != 0 {
		var resp tl.Serializable
		req := tonapi.GetTransactions{Limit: 16, AccID: &tonapi.AccountID{Workchain: addr.Workchain(), ID: addr.Data()}, LT: int64(lt), TxHash: hash}
		if err := c.api.Client().QueryLiteserver(ctx, req, &resp); err != nil {
			return fmt.Errorf("ton: transactions of %s: %w", addr.StringRaw(), err)
		}
		txs, err := transactionList(addr, hash, resp)
		if err != nil {
			return err
		}
		for _, tx := range txs {
			if !visit(tx) {
				return nil
			}
			lt, hash = tx.PrevLT, tx.PrevHash
		}
	}
	return nil
}

// transactionList parses a liteserver's answer to GetTransactions: newest first, the first with the
// expected hash and each next one the predecessor the previous names.
func transactionList(addr *address.Address, hash []byte, resp tl.Serializable) ([]*chain.Transaction, error) {
	var list tonapi.TransactionList
	switch r := resp.(type) {
	case tonapi.TransactionList:
		list = r
	case tonapi.LSError:
		return nil, fmt.Errorf("ton: transactions of %s: %w", addr.StringRaw(), r)
	default:
		return nil, fmt.Errorf("ton: transactions of %s: unexpected answer %T", addr.StringRaw(), resp)
	}
	cells, err := cell.FromBOCMultiRoot(list.Transactions)
	if err != nil || len(cells) == 0 {
		return nil, fmt.Errorf("ton: transactions of %s: no transactions (%v)", addr.StringRaw(), err)
	}
	txs := make([]*chain.Transaction, 0, len(cells))
	for _, tc := range cells {
		if !bytes.Equal(tc.Hash(), hash) {
			return nil, fmt.Errorf("ton: transactions of %s: got %x, want %x", addr.StringRaw(), tc.Hash(), hash)
		}
		tx, err := chain.ParseTransaction(addr.Workchain(), tc)
		if err != nil {
			return nil, err
		}
		txs = append(txs, tx)
		hash = tx.PrevHash
	}
	return txs, nil
}
