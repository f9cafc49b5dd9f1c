package seal

import (
	"sync"
	"testing"
	"time"
)

func TestReplayCache(t *testing.T) {
	var c ReplayCache
	h := testHeader()
	now := time.Unix(h.Expires-60, 0)
	if err := c.Check(&h, now); err != nil {
		t.Fatal(err)
	}
	wantErr(t, c.Check(&h, now), ErrReplay)
	other := testHeader()
	other.RequestID[0] ^= 1
	if err := c.Check(&other, now); err != nil {
		t.Fatal(err)
	}
	wantErr(t, c.Check(&h, time.Unix(h.Expires, 0)), ErrExpired)
	wantErr(t, c.Check(&h, time.Unix(h.Expires-int64(DefaultMaxLifetime/time.Second)-1, 0)), ErrExpired)

	// Expired entries are forgotten, at the latest half a lifetime later.
	later := testHeader()
	later.RequestID[0] ^= 2
	later.Expires = h.Expires + 600
	if err := c.Check(&later, time.Unix(h.Expires+300, 0)); err != nil {
		t.Fatal(err)
	}
	if len(c.seen) != 1 {
		t.Fatalf("%d entries after pruning, want 1", len(c.seen))
	}
}

func TestReplayCacheConcurrent(t *testing.T) {
	c := ReplayCache{MaxLifetime: time.Hour}
	h := testHeader()
	now := time.Unix(h.Expires-60, 0)
	var wg sync.WaitGroup
	accepted := make(chan struct{}, 16)
	for range 16 {
		wg.Go(func() {
			if c.Check(&h, now) == nil {
				accepted <- struct{}{}
			}
		})
	}
	wg.Wait()
	if len(accepted) != 1 {
		t.Fatalf("accepted %d times", len(accepted))
	}
}
