package payments

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"testing"

	"github.com/cocoon-go/cocoon/contracts"
)

// FuzzParseVoucherPost: voucher posts come from clients (to the proxy) and
// from the proxy (to workers); any bytes give a post or an error.
func FuzzParseVoucherPost(f *testing.F) {
	_, key, _ := ed25519.GenerateKey(nil)
	sv := contracts.Voucher{ChannelID: [32]byte{1}, Seqno: 3, Total: 12345}.Sign(key)
	good, _ := json.Marshal(VoucherPost{Channel: "EQ...", Voucher: sv})
	f.Add(good)
	f.Add([]byte(`{"channel":"x","voucher":"AAAA"}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseVoucherPost(bytes.NewReader(b))
		if err != nil {
			return
		}
		if _, err := json.Marshal(p); err != nil {
			t.Fatalf("a parsed post does not encode: %v", err)
		}
	})
}
