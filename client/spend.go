package client

import (
	"fmt"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/cocoon-go/cocoon/accounts"
	"github.com/cocoon-go/cocoon/api"
)

// What a client spends, unless its Config says otherwise. A request's worst
// case is its price cap for the most tokens a receipt may claim for it
// (seal.MaxCost): with the default price cap of 2000 nanoTON a token and
// the default max_tokens of 16384, a short chat request may cost up to
// about 0.037 TON.
const (
	// DefaultMaxRequestCost refuses a request that may cost more than 1 TON
	// (a prompt of about 480 KB at the default price cap): ask for fewer
	// max_tokens, or raise the cap.
	DefaultMaxRequestCost = 1_000_000_000
	// DefaultMaxSpendPerMinute is 5 TON a minute: the worst cases of the
	// requests in flight and the costs booked in the last minute together,
	// room for more than a hundred default requests at once.
	DefaultMaxSpendPerMinute = 5_000_000_000
)

// spending holds the client's caps: what one request may cost, what the
// requests of the last minute may cost together, and what each API key may
// spend in all. A request holds its worst case against them while in
// flight, and books its receipt's cost when it ends.
type spending struct {
	perRequest uint64
	perMinute  uint64
	now        func() time.Time

	mu     sync.Mutex
	held   uint64     // worst cases of the requests in flight
	recent [60]booked // costs booked in the last minute, by second
	keys   map[string]*keySpend
}

// booked is what was booked in one second.
type booked struct {
	at     int64 // unix seconds
	amount uint64
}

// keySpend is one API key's limit, what it has spent and what its
// requests in flight may cost.
type keySpend struct {
	limit, spent, held uint64
}

// newSpending returns the caps of cfg, with what each API key has spent
// read from journal.
func newSpending(cfg Config, journal accounts.Ledger) *spending {
	s := &spending{perRequest: cfg.MaxRequestCost, perMinute: cfg.MaxSpendPerMinute, now: time.Now, keys: map[string]*keySpend{}}
	books, _ := journal.(interface{ APIKey(string) accounts.Account })
	for _, k := range cfg.APIKeys {
		ks := &keySpend{limit: k.Limit}
		if books != nil {
			ks.spent = books.APIKey(k.Name).Amount
		}
		s.keys[k.Name] = ks
	}
	return s
}

// spend is one request's hold on the caps.
type spend struct {
	s     *spending
	key   string // API key name, or ""
	worst uint64
	done  bool // guarded by s.mu
}

// hold admits a request that may cost up to worst nanoTON, spent through
// the API key named key ("" without keys), or says which cap it passes.
func (s *spending) hold(key string, worst uint64) (*spend, *api.Error) {
	if worst > s.perRequest {
		return nil, &api.Error{Status: http.StatusBadRequest, Type: api.TypeInvalidRequest, Param: "max_tokens", Code: "request_cost_over_cap",
			Message: fmt.Sprintf("this request may cost up to %d nanoTON (its max_tokens and prompt at the price cap), over this client's cap of %d nanoTON a request (max_request_cost): ask for fewer max_tokens or send a shorter prompt", worst, s.perRequest)}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now().Unix()
	var minute uint64
	oldest := now
	for _, b := range s.recent {
		if b.at > now-60 && b.amount > 0 {
			minute = addSat(minute, b.amount)
			oldest = min(oldest, b.at)
		}
	}
	if used := addSat(s.held, minute); worst > s.perMinute || used > s.perMinute-worst {
		retry := max(1, oldest+60-now)
		if minute == 0 {
			retry = 1 // only requests in flight hold it
		}
		return nil, &api.Error{Status: http.StatusTooManyRequests, Type: api.TypeRateLimit, Code: "spend_rate_exceeded",
			Message: fmt.Sprintf("this client may spend %d nanoTON a minute (max_spend_per_minute): %d booked in the last minute and %d held for requests in flight, and this request may cost up to %d; try again in %d s",
				s.perMinute, minute, s.held, worst, retry), RetryAfter: retry}
	}
	ks := s.keys[key]
	if ks != nil {
		if used := addSat(ks.spent, ks.held); used > ks.limit || worst > ks.limit-used {
			return nil, api.Errorf(http.StatusTooManyRequests, api.TypeInsufficient, "insufficient_quota",
				"API key %q has spent %d of its %d nanoTON, with %d held for its requests in flight; this request may cost up to %d: ask for fewer max_tokens or for a key with a higher limit",
				key, ks.spent, ks.limit, ks.held, worst)
		}
		ks.held += worst
	}
	s.held += worst
	return &spend{s: s, key: key, worst: worst}, nil
}

// book releases the hold and books cost, from a verified receipt.
func (p *spend) book(cost uint64) { p.end(cost) }

// release releases the hold of a request that ended without a receipt:
// nothing was paid for it.
func (p *spend) release() { p.end(0) }

func (p *spend) end(cost uint64) {
	s := p.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.done {
		return
	}
	p.done = true
	s.held -= p.worst
	if ks := s.keys[p.key]; ks != nil {
		ks.held -= p.worst
		ks.spent = addSat(ks.spent, cost)
	}
	if cost == 0 {
		return
	}
	now := s.now().Unix()
	b := &s.recent[now%60]
	if b.at != now {
		*b = booked{at: now}
	}
	b.amount = addSat(b.amount, cost)
}

// addSat is a+b, or math.MaxUint64 if that overflows.
func addSat(a, b uint64) uint64 {
	if a > math.MaxUint64-b {
		return math.MaxUint64
	}
	return a + b
}
