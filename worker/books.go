package worker

import (
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"

	"github.com/cocoon-go/cocoon/accounts"
	"github.com/cocoon-go/cocoon/contracts"
	"github.com/cocoon-go/cocoon/internal/atomicfile"
	"github.com/cocoon-go/cocoon/payments"
	"github.com/cocoon-go/cocoon/price"
	"github.com/cocoon-go/cocoon/seal"
)

// DefaultProxyCredit is what a proxy may owe a worker by default: 1 TON,
// the proxy's own default credit for a client.
const DefaultProxyCredit = 1_000_000_000

// DefaultMaxProxyFeeBPS is the share of each cost a worker lets a proxy keep
// by default when the root sets no worker fee: 10%, what `cocoon proxy`
// charges.
const DefaultMaxProxyFeeBPS = 1000

// ErrProxyUnpaid is the error for a request from a proxy whose unpaid
// receipts, with what its requests in flight may cost, would pass the
// credit the worker gives it.
var ErrProxyUnpaid = errors.New("worker: the proxy has not paid for enough of its answers")

// books is the worker's own account of what each proxy owes it, kept as
// the proxy keeps its clients' (accounts.File, with the proxy in the
// paying party's place): what the worker is owed for each receipt it signed
// (the proxy's rule, price.Split, so both sides agree to the nanoTON),
// against what that proxy's vouchers cover (payments.Collector.Covered),
// with the worst case of each request in flight held (price.Price.MaxCost
// of seal's bound) while it runs. A request is refused once the proxy's
// unpaid receipts with what is held would pass the worker's credit, or,
// once the proxy pays through a channel, that channel's unspent deposit.
//
// Which proxy sent a request: the one whose TLS key the worker saw on the
// connection it dialed (pinned by Config.ProxyPin); requests and vouchers
// arrive on that connection, so a proxy is named by its TLS key hash (hex).
// A proxy's accounts (the voucher keys of its channels, which the collector
// counts payments by) are learned from the vouchers it posts over the
// connection, and for Payments.Channel from ProxyPin at the start. An
// account once bound to a proxy stays bound to it, so a second TLS identity
// cannot be credited with what the first paid. A worker without a pin takes
// every TLS key for a new proxy, each with its own credit.
type books struct {
	journal *accounts.File
	collect *payments.Collector
	split   price.Split
	credit  uint64
	path    string // the bindings of accounts to proxies, as JSON

	mu    sync.Mutex
	owner map[string]string // account → proxy
}

// openBooks opens the journal at path and the bindings kept beside it.
func openBooks(path string, c *payments.Collector, split price.Split, credit uint64) (*books, error) {
	j, err := accounts.OpenFile(path)
	if err != nil {
		return nil, fmt.Errorf("worker: books: %w", err)
	}
	b := &books{journal: j, collect: c, split: split, credit: credit, path: path + ".proxies", owner: map[string]string{}}
	raw, err := os.ReadFile(b.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		j.Close()
		return nil, fmt.Errorf("worker: books: %w", err)
	default:
		if err := json.Unmarshal(raw, &b.owner); err != nil {
			j.Close()
			return nil, fmt.Errorf("worker: books: %s: %w", b.path, err)
		}
	}
	return b, nil
}

// bind counts account's payments for proxy from now on, unless the account
// is already another proxy's.
func (b *books) bind(proxy, account string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch owner, ok := b.owner[account]; {
	case ok && owner == proxy:
		return nil
	case ok:
		return fmt.Errorf("worker: account %.16s… pays for proxy %.16s…, not %.16s…", account, owner, proxy)
	}
	b.owner[account] = proxy
	raw, err := json.Marshal(b.owner)
	if err == nil {
		err = atomicfile.WriteFile(b.path, raw, 0o600)
	}
	if err != nil {
		delete(b.owner, account)
		return fmt.Errorf("worker: books: %w", err)
	}
	return nil
}

// bindVoucher binds the account of the channel at channel to proxy when v,
// posted by proxy on it, is signed by that account's key.
func (b *books) bindVoucher(proxy, channel string, v contracts.SignedVoucher) error {
	account, ok := b.collect.Account(channel)
	if !ok {
		return nil
	}
	key, err := hex.DecodeString(account)
	if err != nil || len(key) != ed25519.PublicKeySize || !v.Verify(key) {
		return nil
	}
	return b.bind(proxy, account)
}

// covered is what proxy has paid over all its accounts' channels, the
// unspent deposit of those open, and whether it has any channel.
func (b *books) covered(proxy string) (paid, available uint64, channels bool) {
	b.mu.Lock()
	var accts []string
	for a, p := range b.owner {
		if p == proxy {
			accts = append(accts, a)
		}
	}
	b.mu.Unlock()
	for _, a := range accts {
		p, av := b.collect.Covered(a)
		paid, available = paid+p, available+av
		if open, closing := b.collect.ChannelsOf(a); open+closing > 0 {
			channels = true
		}
	}
	return paid, available, channels
}

// admit takes the request with header h from proxy, holding hold (the most
// its receipt may be worth) against the proxy's credit: the worker's
// credit limit, and, once the proxy pays through a channel, no more than
// its unspent deposit. Before its first voucher a proxy gets the limit: it
// pays only for answers it has had. Errors wrap ErrProxyUnpaid.
func (b *books) admit(proxy string, h *seal.Header, hold uint64) (*accounts.Ticket, error) {
	paid, available, channels := b.covered(proxy)
	credit := &accounts.Credit{Allowance: b.credit, Paid: paid}
	if channels {
		credit.Allowance = min(b.credit, available)
	}
	hh := h.Hash()
	t, err := b.journal.Admit(proxy, hex.EncodeToString(hh[:]), h.Expires, hold, credit)
	if err != nil {
		return nil, fmt.Errorf("%w: proxy %.16s…: %w", ErrProxyUnpaid, proxy, err)
	}
	return t, nil
}

// book records what proxy owes for the receipt rc on t.
func (b *books) book(t *accounts.Ticket, proxy string, rc *seal.Receipt) error {
	pay := b.split.WorkerPay(rc.Price, rc.Usage, rc.Cost.Total)
	return t.Book(accounts.Entry{Time: rc.Time, RequestID: hex.EncodeToString(rc.HeaderHash[:]), Client: proxy,
		Worker: hex.EncodeToString(rc.Worker[:]), Model: rc.Model, Usage: rc.Usage, Cost: pay, WorkerPay: pay})
}

// owed is what proxy owes for the receipts booked, and what its vouchers cover.
func (b *books) owed(proxy string) (owed, paid uint64) {
	paid, _, _ = b.covered(proxy)
	return b.journal.Client(proxy).Amount, paid
}
