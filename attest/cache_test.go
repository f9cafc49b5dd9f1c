package attest_test

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cocoon-go/cocoon/attest"
)

// fakeMeasurement is what fakeVerifier claims.
var fakeMeasurement = [32]byte{0xfa, 0xce}

// fakeVerifier is a test verifier of kind "fake" that counts its calls. Its
// CPU evidence is the bare 64-byte report_data (see fakeProducer), taken on
// trust.
type fakeVerifier struct {
	calls atomic.Int32
	fail  error // returned by Verify when set
}

func (v *fakeVerifier) Kind() string { return "fake" }

func (v *fakeVerifier) Verify(cpu []byte, now time.Time) (*attest.Claims, error) {
	v.calls.Add(1)
	if v.fail != nil {
		return nil, v.fail
	}
	c := &attest.Claims{Kind: "fake", Measurement: fakeMeasurement}
	copy(c.ReportData[:], cpu)
	return c, nil
}

// fakeProducer makes the CPU evidence fakeVerifier reads.
type fakeProducer struct{}

func (fakeProducer) Kind() string                        { return "fake" }
func (fakeProducer) Produce(rd [64]byte) ([]byte, error) { return rd[:], nil }

// fakeCache is a cache in front of a checker trusting v, whose clock is *now.
func fakeCache(v *fakeVerifier, now *time.Time) *attest.Cache {
	c := attest.NewChecker(attest.Policy{Measurements: [][32]byte{fakeMeasurement}}, v)
	c.Now = func() time.Time { return *now }
	return attest.NewCache(c)
}

func TestCacheSkipsSecondVerify(t *testing.T) {
	v := &fakeVerifier{}
	now := testNow
	cache := fakeCache(v, &now)
	raw := evidence(t, fakeProducer{}, testBundle()).Marshal()
	first, err := cache.Check(raw)
	if err != nil {
		t.Fatalf("first Check: %v", err)
	}
	second, err := cache.Check(raw)
	if err != nil {
		t.Fatalf("second Check: %v", err)
	}
	if n := v.calls.Load(); n != 1 {
		t.Errorf("verifier called %d times, want 1", n)
	}
	if second != first {
		t.Error("second Check did not return the cached result")
	}
}

func TestCacheDropsExpired(t *testing.T) {
	v := &fakeVerifier{}
	now := testNow
	cache := fakeCache(v, &now)
	b := testBundle()
	raw := evidence(t, fakeProducer{}, b).Marshal()
	got, err := cache.Check(raw)
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Unix(b.Expires, 0); !got.Expires.Equal(want) {
		t.Fatalf("Expires = %v, want the bundle's %v", got.Expires, want)
	}
	now = got.Expires
	if _, err := cache.Check(raw); !errors.Is(err, attest.ErrExpired) {
		t.Errorf("after expiry: %v, want ErrExpired", err)
	}
	if n := v.calls.Load(); n != 2 {
		t.Errorf("verifier called %d times, want 2 (expired entry re-checked)", n)
	}
	if n := cache.Len(); n != 0 {
		t.Errorf("cache holds %d entries after expiry, want 0", n)
	}
}

func TestCacheDoesNotCacheFailures(t *testing.T) {
	v := &fakeVerifier{fail: attest.ErrSignature}
	now := testNow
	cache := fakeCache(v, &now)
	raw := evidence(t, fakeProducer{}, testBundle()).Marshal()
	for range 2 {
		if _, err := cache.Check(raw); !errors.Is(err, attest.ErrSignature) {
			t.Fatalf("Check: %v, want ErrSignature", err)
		}
	}
	if n := v.calls.Load(); n != 2 {
		t.Errorf("verifier called %d times, want 2", n)
	}
	v.fail = nil
	if _, err := cache.Check(raw); err != nil {
		t.Errorf("after the failure cleared: %v", err)
	}
}

func TestCacheConcurrent(t *testing.T) {
	v := &fakeVerifier{}
	now := testNow
	cache := fakeCache(v, &now)
	var raws [][]byte
	for i := range 4 {
		b := testBundle()
		b.Created += int64(i)
		raws = append(raws, evidence(t, fakeProducer{}, b).Marshal())
	}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 50 {
				raw := raws[(g+i)%len(raws)]
				if _, err := cache.Check(raw); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := cache.Len(); n != len(raws) {
		t.Errorf("cache holds %d entries, want %d", n, len(raws))
	}
}

func TestCacheBounded(t *testing.T) {
	v := &fakeVerifier{}
	now := testNow
	cache := fakeCache(v, &now)
	const n = 4096 + 10
	for i := range n {
		b := testBundle()
		b.Expires += int64(i)
		if _, err := cache.Check(evidence(t, fakeProducer{}, b).Marshal()); err != nil {
			t.Fatal(err)
		}
	}
	if got := cache.Len(); got > 4096 {
		t.Errorf("cache holds %d entries, want at most 4096", got)
	}
}
