package seal

import (
	"fmt"
	"sync"
	"time"
)

// DefaultMaxLifetime is how far ahead of now a request may expire when
// ReplayCache.MaxLifetime is zero.
const DefaultMaxLifetime = 10 * time.Minute

// ReplayCache remembers the requests a worker has accepted until they
// expire, so that no envelope is served twice. It is safe for concurrent
// use; the zero value is ready.
type ReplayCache struct {
	// MaxLifetime bounds how far ahead of now a request may expire, and so
	// how long the cache remembers it. Zero means DefaultMaxLifetime.
	MaxLifetime time.Duration

	mu        sync.Mutex
	seen      map[[32]byte]int64 // header hash → expiry
	nextPrune int64
}

// Check accepts h once: it fails with ErrExpired if h has expired at now or
// expires too far ahead, and with ErrReplay if it has accepted h before.
func (c *ReplayCache) Check(h *Header, now time.Time) error {
	life := c.MaxLifetime
	if life <= 0 {
		life = DefaultMaxLifetime
	}
	t := now.Unix()
	if h.Expires <= t {
		return fmt.Errorf("seal: request %x expired at %d, now %d: %w", h.RequestID, h.Expires, t, ErrExpired)
	}
	if limit := now.Add(life).Unix(); h.Expires > limit {
		return fmt.Errorf("seal: request %x expires at %d, after the limit %d: %w", h.RequestID, h.Expires, limit, ErrExpired)
	}
	hh := h.Hash()
	c.mu.Lock()
	defer c.mu.Unlock()
	if t >= c.nextPrune {
		for k, exp := range c.seen {
			if exp <= t {
				delete(c.seen, k)
			}
		}
		c.nextPrune = t + int64(life/time.Second)/2 + 1
	}
	if _, ok := c.seen[hh]; ok {
		return fmt.Errorf("seal: request %x: %w", h.RequestID, ErrReplay)
	}
	if c.seen == nil {
		c.seen = make(map[[32]byte]int64)
	}
	c.seen[hh] = h.Expires
	return nil
}
