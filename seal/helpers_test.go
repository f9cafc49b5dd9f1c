package seal

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/cocoon-go/cocoon/price"
)

// testWorker is a worker with deterministic keys, so fuzz seeds stay valid.
type testWorker struct {
	id   [32]byte
	key  *PrivateKey
	sign ed25519.PrivateKey
}

func newTestWorker(t testing.TB, kem uint16, n byte) testWorker {
	t.Helper()
	seed := bytes.Repeat([]byte{n}, 32)
	key, err := ParsePrivateKey(append(binary.BigEndian.AppendUint16(nil, kem), seed...))
	if err != nil {
		t.Fatal(err)
	}
	return testWorker{
		id:   sha256.Sum256(append([]byte("bundle"), n, byte(kem>>8), byte(kem))),
		key:  key,
		sign: ed25519.NewKeyFromSeed(sha256.New().Sum(seed)[:32]),
	}
}

func (w testWorker) recipient() Recipient {
	return Recipient{KeyID: w.id, PublicKey: w.key.PublicKey()}
}

func recipients(ws ...testWorker) []Recipient {
	var rs []Recipient
	for _, w := range ws {
		rs = append(rs, w.recipient())
	}
	return rs
}

var (
	time1      = time.Unix(1_800_000_000, 0) // before testHeader expires
	testClient = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0xc1}, 32))
	testProxy  = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x9e}, 32))
)

func testHeader() Header {
	return Header{
		RequestID: [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		Endpoint:  EndpointChat,
		Model:     "Qwen/Qwen3-0.6B",
		MaxTokens: 128,
		Stream:    true,
		PriceCap:  price.Default,
		Expires:   1_900_000_000,
		ClientKey: testClient.Public().(ed25519.PublicKey),
		Proxy:     sha256.Sum256([]byte("the proxy's TLS key")),
	}
}

const (
	testSecret = "the secret word is marmalade-7731"
	testPrompt = `{"model":"Qwen/Qwen3-0.6B","messages":[{"role":"user","content":"` + testSecret + `"}]}`
)

func mustSeal(t testing.TB, h Header, body []byte, ws ...testWorker) ([]byte, *ClientSession) {
	t.Helper()
	raw, s, err := Seal(h, body, recipients(ws...), testClient)
	if err != nil {
		t.Fatal(err)
	}
	return raw, s
}

func mustOpen(t testing.TB, raw []byte, w testWorker) (*Envelope, []byte, *WorkerSession) {
	t.Helper()
	env, body, s, err := Open(raw, w.id, w.key)
	if err != nil {
		t.Fatal(err)
	}
	return env, body, s
}

// resign encodes e and signs it with k, as someone holding k would after
// changing e: it gets past the signature check so the layer under it is tested.
func resign(e *Envelope, k ed25519.PrivateKey) []byte {
	b := e.appendHead(nil, len(e.Body))
	b = append(b, e.Body...)
	return append(b, ed25519.Sign(k, signedMessage(tagEnvelope, b))...)
}

func wantErr(t testing.TB, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("err = %v, want %v", err, target)
	}
}
