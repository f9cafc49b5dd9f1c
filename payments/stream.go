package payments

import (
	"sync"

	"github.com/cocoon-go/cocoon/contracts"
)

// Stream pays amounts as they come in on one channel. Amounts that arrive
// while a voucher is being recorded are paid together by the next one, so
// under load a payer signs (and fsyncs) far fewer vouchers than it accepts
// costs, and the voucher total still equals the sum of the amounts once the
// stream is idle.
type Stream struct {
	payer *Payer
	send  func(contracts.SignedVoucher)
	fail  func(amount uint64, err error)

	mu   sync.Mutex
	owed uint64
	busy bool
	idle *sync.Cond
}

// NewStream pays through payer, handing each voucher to send. fail hears of
// amounts that could not be paid (the deposit is exhausted, say); they are
// dropped.
func NewStream(payer *Payer, send func(contracts.SignedVoucher), fail func(amount uint64, err error)) *Stream {
	s := &Stream{payer: payer, send: send, fail: fail}
	s.idle = sync.NewCond(&s.mu)
	return s
}

// Add queues amount to be paid and returns at once.
func (s *Stream) Add(amount uint64) {
	if amount == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.owed += amount
	if !s.busy {
		s.busy = true
		go s.run()
	}
}

// Flush waits until everything added so far is paid and handed to send.
func (s *Stream) Flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.busy {
		s.idle.Wait()
	}
}

func (s *Stream) run() {
	for {
		s.mu.Lock()
		amount := s.owed
		s.owed = 0
		if amount == 0 {
			s.busy = false
			s.idle.Broadcast()
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		v, err := s.payer.Pay(amount)
		if err != nil {
			if s.fail != nil {
				s.fail(amount, err)
			}
			continue
		}
		s.send(v)
	}
}
