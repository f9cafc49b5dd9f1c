package attest

import (
	"crypto/sha256"
	"sync"
	"time"
)

// maxCacheEntries bounds a Cache; past it, expired entries are swept and
// then the entry expiring soonest is dropped.
const maxCacheEntries = 4096

// Cache remembers evidence that passed a [Checker], keyed by the SHA-256 of
// the evidence bytes, until the result expires ([Verified.Expires]). Failures
// are not remembered. It is safe for concurrent use; concurrent first checks
// of the same evidence may each verify it. Results are shared: treat them as
// read-only.
type Cache struct {
	checker *Checker

	mu      sync.Mutex
	entries map[[32]byte]*Verified
}

// NewCache returns an empty cache in front of c.
func NewCache(c *Checker) *Cache {
	return &Cache{checker: c, entries: make(map[[32]byte]*Verified)}
}

// Check returns the cached result for evidence if it has not expired, and
// otherwise checks it with the Checker.
func (c *Cache) Check(evidence []byte) (*Verified, error) {
	now := c.checker.now()
	if len(evidence) > MaxEvidenceSize {
		return c.checker.check(evidence, now) // refused before hashing it
	}
	key := sha256.Sum256(evidence)
	c.mu.Lock()
	v, ok := c.entries[key]
	if ok && !now.Before(v.Expires) {
		delete(c.entries, key)
		ok = false
	}
	c.mu.Unlock()
	if ok {
		return v, nil
	}

	v, err := c.checker.check(evidence, now)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= maxCacheEntries {
		c.evict(now)
	}
	c.entries[key] = v
	return v, nil
}

// Len returns the number of cached results, expired ones included until
// they are next looked up or swept.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// evict drops expired entries and, if none were, the one expiring soonest.
// c.mu is held.
func (c *Cache) evict(now time.Time) {
	var soonest [32]byte
	var first time.Time
	for k, v := range c.entries {
		if !now.Before(v.Expires) {
			delete(c.entries, k)
			continue
		}
		if first.IsZero() || v.Expires.Before(first) {
			soonest, first = k, v.Expires
		}
	}
	if len(c.entries) >= maxCacheEntries {
		delete(c.entries, soonest)
	}
}
