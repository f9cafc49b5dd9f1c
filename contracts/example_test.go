package contracts_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/cocoon-go/cocoon/contracts"
	"github.com/xssnick/tonutils-go/address"
)

// A client opens a channel to a proxy, then pays by signing cumulative vouchers; the proxy
// claims the newest one on chain when it wants its money.
func Example() {
	seed := sha256.Sum256([]byte("client"))
	clientKey := ed25519.NewKeyFromSeed(seed[:])
	proxyPub, _, _ := ed25519.GenerateKey(nil)

	ch := contracts.ChannelConfig{
		Payer:      address.MustParseRawAddr("0:1111111111111111111111111111111111111111111111111111111111111111"),
		Payee:      address.MustParseRawAddr("0:2222222222222222222222222222222222222222222222222222222222222222"),
		PayerKey:   clientKey.Public().(ed25519.PublicKey),
		PayeeKey:   proxyPub,
		Nonce:      1,
		CloseDelay: 24 * time.Hour,
	}
	id, _ := ch.ID()

	// Deploy: send StateInit with TopUpBody(queryID, deposit), value deposit + TopUpReserve.
	_ = contracts.TopUpBody(1, 5_000_000_000)

	// After some answers, the client owes 1.25 TON in all.
	sv := contracts.Voucher{ChannelID: id, Seqno: 3, Total: 1_250_000_000}.Sign(clientKey)
	wire := sv.Bytes()

	// The proxy checks what it received and claims it.
	got, err := contracts.ParseSignedVoucher(wire)
	fmt.Println(err, got.Verify(ch.PayerKey), got.Total)
	_ = contracts.ClaimBody(2, got)
	// Output: <nil> true 1250000000
}
