package collateral

import (
	"fmt"
	"net/http"
	"time"

	"github.com/cocoon-go/cocoon/internal/binenc"
)

// Limits on a cache entry besides MaxBodySize.
const (
	maxURL         = 4 << 10
	maxHeaders     = 32 // header values kept
	maxHeaderName  = 256
	maxHeaderValue = 64 << 10
	maxEntrySize   = MaxBodySize + maxURL + maxHeaders*(maxHeaderName+maxHeaderValue+8) + 64
)

const (
	entryMagic   = "CCCE"
	entryVersion = 1
)

// check refuses a response that would not fit the entry limits.
func (r *Response) check() error {
	if len(r.URL) == 0 || len(r.URL) > maxURL {
		return fmt.Errorf("URL of %d bytes (limit %d)", len(r.URL), maxURL)
	}
	n := 0
	for name, values := range r.Header {
		for _, v := range values {
			if len(name) > maxHeaderName || len(v) > maxHeaderValue {
				return fmt.Errorf("header %.40q of %d bytes (limit %d)", name, len(v), maxHeaderValue)
			}
			n++
		}
	}
	if n > maxHeaders {
		return fmt.Errorf("%d header values (limit %d)", n, maxHeaders)
	}
	if len(r.Body) > MaxBodySize {
		return fmt.Errorf("%w: %d bytes", ErrTooLarge, len(r.Body))
	}
	return nil
}

// marshalEntry encodes a checked response as a cache file:
//
//	"CCCE" 0x01 ‖ URL ‖ fetched-at ‖ expires-at ‖ count ‖ count × (name ‖ value) ‖ body
//
// with byte strings behind a uint32 length, times as uint64 Unix
// nanoseconds and count as a uint16. A header with several values appears
// once per value.
func marshalEntry(r *Response) []byte {
	b := binenc.AppendMagic(nil, entryMagic, entryVersion)
	b = binenc.AppendBytes(b, []byte(r.URL))
	b = binenc.AppendU64(b, uint64(r.FetchedAt.UnixNano()))
	b = binenc.AppendU64(b, uint64(r.ExpiresAt.UnixNano()))
	var pairs [][2]string
	for name, values := range r.Header {
		for _, v := range values {
			pairs = append(pairs, [2]string{name, v})
		}
	}
	b = binenc.AppendU16(b, uint16(len(pairs)))
	for _, p := range pairs {
		b = binenc.AppendBytes(b, []byte(p[0]))
		b = binenc.AppendBytes(b, []byte(p[1]))
	}
	return binenc.AppendBytes(b, r.Body)
}

func unmarshalEntry(p []byte) (*Response, error) {
	d := binenc.NewDecoder(p)
	d.Magic(entryMagic, entryVersion)
	r := &Response{
		URL:       string(d.BytesNoCopy("url", 1, maxURL)),
		FetchedAt: time.Unix(0, int64(d.U64("fetched-at"))).UTC(),
		ExpiresAt: time.Unix(0, int64(d.U64("expires-at"))).UTC(),
		Header:    make(http.Header),
	}
	n := int(d.U16("header count"))
	if n > maxHeaders {
		d.Failf("%d header values (limit %d)", n, maxHeaders)
	}
	for i := 0; i < n && d.Err() == nil; i++ {
		name := string(d.BytesNoCopy("header name", 1, maxHeaderName))
		value := string(d.BytesNoCopy("header value", 0, maxHeaderValue))
		r.Header[name] = append(r.Header[name], value)
	}
	r.Body = d.Bytes("body", 0, MaxBodySize)
	if err := d.Finish(); err != nil {
		return nil, fmt.Errorf("cache entry: %w", err)
	}
	return r, nil
}
