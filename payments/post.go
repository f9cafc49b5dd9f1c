package payments

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/cocoon-go/cocoon/api"
	"github.com/cocoon-go/cocoon/contracts"
)

// VoucherPost carries the newest cumulative voucher of a payment channel to
// its payee (POST /cocoon/v1/vouchers, as JSON). Vouchers are cumulative, so
// only the newest one matters and a lost or reordered post costs nothing.
type VoucherPost struct {
	Channel string                  `json:"channel"` // the channel's address
	Voucher contracts.SignedVoucher `json:"voucher"`
}

// MaxVoucherPost bounds a VoucherPost as JSON.
const MaxVoucherPost = 4 << 10

// ParseVoucherPost reads a VoucherPost of at most MaxVoucherPost bytes.
func ParseVoucherPost(r io.Reader) (*VoucherPost, error) {
	var p VoucherPost
	if err := json.NewDecoder(io.LimitReader(r, MaxVoucherPost)).Decode(&p); err != nil {
		return nil, fmt.Errorf("payments: voucher post: %w", err)
	}
	return &p, nil
}

// Post delivers one VoucherPost to a payee.
type Post func(ctx context.Context, v VoucherPost) error

// PostTo is the Post of a payee served at url through rt: the client's is
// its proxy's voucher URL over its pinned TLS transport, the proxy's the
// worker's over the link the worker dialed. A non-2xx answer is an error
// that quotes the payee (ErrPostRefused); a 409 with the payee's newest
// voucher is also a *StaleVoucherError that carries it.
func PostTo(rt http.RoundTripper, url string) Post {
	return func(ctx context.Context, v VoucherPost) error {
		body, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("payments: voucher post: %w", err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("payments: voucher post to %s: %w", url, err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := rt.RoundTrip(req)
		if err != nil {
			return fmt.Errorf("payments: voucher post: %w", err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, MaxVoucherPost))
		if resp.StatusCode == http.StatusConflict {
			if kept, err := ParseVoucherPost(bytes.NewReader(b)); err == nil && kept.Channel == v.Channel {
				return fmt.Errorf("%w: HTTP 409: %w", ErrPostRefused, &StaleVoucherError{Newest: kept.Voucher})
			}
		}
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("%w: HTTP %d: %s", ErrPostRefused, resp.StatusCode, bytes.TrimSpace(b))
		}
		return nil
	}
}

// ServeHTTP takes a VoucherPost for the collector: 204 once the voucher is
// kept (or was already: posts may cross), 404 for a channel it will not be
// paid through, 429 while channel discovery is rate limited, 409 with the
// newest voucher kept, as a VoucherPost, for a voucher whose total is below
// it (its payer lost vouchers in a crash: see Payer.CatchUp), 400 for a
// voucher it refuses.
func (c *Collector) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	post, err := ParseVoucherPost(r.Body)
	if err != nil {
		api.WriteError(rw, api.BadRequest("", err.Error()))
		return
	}
	var behind *StaleVoucherError
	switch err := c.Accept(r.Context(), *post); {
	case err == nil:
		rw.WriteHeader(http.StatusNoContent)
	case errors.As(err, &behind):
		rw.Header().Set("Content-Type", "application/json")
		rw.WriteHeader(http.StatusConflict)
		json.NewEncoder(rw).Encode(VoucherPost{Channel: post.Channel, Voucher: behind.Newest})
	case errors.Is(err, ErrBusy):
		rw.Header().Set("Retry-After", "1")
		api.WriteError(rw, api.Errorf(http.StatusTooManyRequests, api.TypeUnavailable, "busy", "%v", err))
	case errors.Is(err, ErrUnknownChannel), errors.Is(err, ErrRefusedChannel):
		api.WriteError(rw, api.Errorf(http.StatusNotFound, api.TypeNotFound, "unknown_channel", "%v", err))
	default:
		api.WriteError(rw, api.Errorf(http.StatusBadRequest, api.TypeInvalidRequest, "bad_voucher", "%v", err))
	}
}
