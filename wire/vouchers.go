package wire

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/cocoon-go/cocoon/api"
	"github.com/cocoon-go/cocoon/contracts"
	"github.com/cocoon-go/cocoon/payments"
)

// VoucherSender delivers the newest voucher of one channel to its payee,
// one post at a time: a voucher queued while a post is under way replaces
// any older one still waiting, since vouchers are cumulative.
type VoucherSender struct {
	Channel string
	// Post sends one VoucherPost body to the payee.
	Post func(ctx context.Context, body []byte) error
	// OnError, if set, hears about failed posts; the next voucher retries.
	OnError func(error)

	mu      sync.Mutex
	pending *contracts.SignedVoucher
	busy    bool
	idle    *sync.Cond
}

// Send queues v for delivery and returns at once.
func (s *VoucherSender) Send(v contracts.SignedVoucher) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending = &v
	if !s.busy {
		s.busy = true
		go s.run()
	}
}

// Flush waits until nothing is queued or being posted.
func (s *VoucherSender) Flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.idle == nil {
		s.idle = sync.NewCond(&s.mu)
	}
	for s.busy {
		s.idle.Wait()
	}
}

func (s *VoucherSender) run() {
	for {
		s.mu.Lock()
		v := s.pending
		s.pending = nil
		if v == nil {
			s.busy = false
			if s.idle != nil {
				s.idle.Broadcast()
			}
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		body, _ := json.Marshal(VoucherPost{Channel: s.Channel, Voucher: *v})
		if err := s.Post(context.Background(), body); err != nil && s.OnError != nil {
			s.OnError(err)
		}
	}
}

// PostJSON posts body to url with rt and checks for a 2xx answer.
func PostJSON(ctx context.Context, rt http.RoundTripper, url string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return fmt.Errorf("posting voucher: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("posting voucher: HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	return nil
}

// ParseVoucherPost reads a VoucherPost of at most 4 KiB.
func ParseVoucherPost(r io.Reader) (*VoucherPost, error) {
	var p VoucherPost
	if err := json.NewDecoder(io.LimitReader(r, 4<<10)).Decode(&p); err != nil {
		return nil, fmt.Errorf("voucher post: %w", err)
	}
	return &p, nil
}

// ServeVoucher handles a VoucherPost for a payee: find gives the payee's end
// of the channel named in the post, and accepted runs once the voucher is
// kept (to claim when enough is unclaimed, say). A voucher no newer than the
// one kept is not an error: posts may cross.
func ServeVoucher(rw http.ResponseWriter, r *http.Request, find func(ctx context.Context, channel string) (*payments.Payee, error), accepted func(*payments.Payee)) {
	post, err := ParseVoucherPost(r.Body)
	if err != nil {
		api.WriteError(rw, api.BadRequest("", err.Error()))
		return
	}
	ch, err := find(r.Context(), post.Channel)
	if err != nil {
		api.WriteError(rw, api.Errorf(http.StatusNotFound, api.TypeNotFound, "unknown_channel", "%v", err))
		return
	}
	if err := ch.Accept(post.Voucher); err != nil && !errors.Is(err, payments.ErrStale) {
		api.WriteError(rw, api.Errorf(http.StatusBadRequest, api.TypeInvalidRequest, "bad_voucher", "%v", err))
		return
	}
	accepted(ch)
	rw.WriteHeader(http.StatusNoContent)
}
