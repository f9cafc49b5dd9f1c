package testnet

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cocoon-go/cocoon/engine"
	"github.com/cocoon-go/cocoon/engine/enginetest"
	"github.com/cocoon-go/cocoon/price"
)

// slow is an engine that takes a while over every answer (the work of a
// real model) and records how many answers it ran at once.
type slow struct {
	*enginetest.FakeEngine
	delay time.Duration
	now   atomic.Int64
	peak  atomic.Int64
}

func (s *slow) Run(ctx context.Context, req *engine.Request, emit engine.Emit) (price.Usage, error) {
	n := s.now.Add(1)
	defer s.now.Add(-1)
	for p := s.peak.Load(); n > p && !s.peak.CompareAndSwap(p, n); p = s.peak.Load() {
	}
	select {
	case <-time.After(s.delay): // the model's work, not a test's wait
	case <-ctx.Done():
		return price.Usage{}, ctx.Err()
	}
	return s.FakeEngine.Run(ctx, req, emit)
}

// burst sends count chat requests at once to the client's OpenAI API and
// returns how many ended with each HTTP status.
func burst(t testing.TB, n *Net, count int) map[int]int {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: count}}
	defer hc.CloseIdleConnections()
	var mu sync.Mutex
	statuses := map[int]int{}
	var wg sync.WaitGroup
	for i := range count {
		wg.Go(func() {
			body := fmt.Sprintf(`{"model":"fake-model","messages":[{"role":"user","content":"request %d"}]}`, i)
			status := 0
			resp, err := hc.Post(n.BaseURL+"/chat/completions", "application/json", strings.NewReader(body))
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				status = resp.StatusCode
				if status != http.StatusOK {
					t.Logf("request %d: %d %s", i, status, b)
				}
			}
			mu.Lock()
			statuses[status]++
			mu.Unlock()
		})
	}
	wg.Wait()
	return statuses
}

// A burst of requests well beyond the workers' capacity waits for free
// slots instead of failing: every request is answered, and no engine runs
// more requests at once than its worker's capacity.
func TestBurstIsQueuedNotFailed(t *testing.T) {
	const capacity, count = 4, 100
	engines := []*slow{
		{FakeEngine: newFake("a slow answer"), delay: 20 * time.Millisecond},
		{FakeEngine: newFake("a slow answer"), delay: 20 * time.Millisecond},
	}
	n := Start(t, Options{Engines: []engine.Engine{engines[0], engines[1]}, Capacity: capacity, Fanout: 2, Unrecorded: true,
		CreditLimit: 1000 * 1_000_000_000}) // credit for the whole burst in flight: this test is about slots
	statuses := burst(t, n, count)
	if statuses[http.StatusOK] != count {
		t.Errorf("statuses %v, want all %d 200", statuses, count)
	}
	for i, e := range engines {
		if p := e.peak.Load(); p > capacity {
			t.Errorf("worker %d ran %d requests at once, over its capacity %d", i, p, capacity)
		}
	}
}
