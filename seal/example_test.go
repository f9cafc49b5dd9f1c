package seal_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/cocoon-go/cocoon/price"
	"github.com/cocoon-go/cocoon/seal"
)

// A client seals a request to one worker, the worker opens it and answers in
// one final chunk, and the client opens the answer and checks the receipt.
func Example() {
	worker, _ := seal.GenerateKey(seal.KEMMLKEM768X25519)
	workerSign, workerPriv, _ := ed25519.GenerateKey(nil)
	keyID := sha256.Sum256(worker.PublicKey()) // in Cocoon, the hash of the worker's key bundle
	_, client, _ := ed25519.GenerateKey(nil)
	proxy := sha256.Sum256([]byte("the proxy's TLS public key")) // identity.CertKeyHash of its certificate

	h := seal.Header{RequestID: [16]byte{1}, Endpoint: seal.EndpointChat, Model: "qwen3-0.6b",
		MaxTokens: 64, PriceCap: price.Default, Expires: time.Now().Add(time.Minute).Unix(), Proxy: proxy}
	raw, cs, _ := seal.Seal(h, []byte(`{"messages":[{"role":"user","content":"Hi"}]}`),
		[]seal.Recipient{{KeyID: keyID, PublicKey: worker.PublicKey()}}, client)

	env, body, ws, _ := seal.Open(raw, keyID, worker)
	chunk, _ := ws.SealChunk([]byte("Hello!"), true)
	receipt, _ := ws.Receipt(price.Usage{PromptTokens: 9, CompletionTokens: 2}, price.Default, time.Now())
	receipt.Sign(workerPriv)

	answer, final, _ := cs.OpenChunk(chunk)
	fmt.Println(env.Header.Model, string(body))
	fmt.Println(string(answer), final, cs.CheckReceipt(receipt, workerSign), receipt.Cost.Total)
	// Output:
	// qwen3-0.6b {"messages":[{"role":"user","content":"Hi"}]}
	// Hello! true <nil> 6500
}
