package seal

import (
	"crypto/ed25519"
	"fmt"

	"github.com/cocoon-go/cocoon/internal/binenc"
	"github.com/cocoon-go/cocoon/price"
)

const (
	receiptMagic   = "CCNR"
	receiptVersion = 1
)

// Receipt is what a worker signs at the end of an answer, with its attested
// Ed25519 key: which request it served, what it sent back, how many tokens
// that took and what they cost. The proxy pays the worker and charges the
// client by it, and an auditor can check it against both ends' bytes.
type Receipt struct {
	RequestID    [16]byte
	HeaderHash   [32]byte // Header.Hash of the request
	RequestHash  [32]byte // SHA-256 of the envelope
	ResponseHash [32]byte // ResponseHasher over the sealed chunks
	Worker       [32]byte // KeyID of the worker that served
	Model        string
	Usage        price.Usage
	Price        price.Price
	Cost         price.Cost // Price.Cost(Usage)
	Time         int64      // unix seconds
	Signature    []byte     // Ed25519 by the worker; empty until Sign
}

// appendUnsigned appends the encoding of r without the signature field.
func (r *Receipt) appendUnsigned(b []byte) []byte {
	b = binenc.AppendMagic(b, receiptMagic, receiptVersion)
	b = append(b, r.RequestID[:]...)
	b = append(b, r.HeaderHash[:]...)
	b = append(b, r.RequestHash[:]...)
	b = append(b, r.ResponseHash[:]...)
	b = append(b, r.Worker[:]...)
	b = binenc.AppendBytes(b, []byte(r.Model))
	b = binenc.AppendU64(b, r.Usage.PromptTokens)
	b = binenc.AppendU64(b, r.Usage.CachedTokens)
	b = binenc.AppendU64(b, r.Usage.CompletionTokens)
	b = appendPrice(b, r.Price)
	b = binenc.AppendU64(b, r.Cost.Prompt)
	b = binenc.AppendU64(b, r.Cost.Completion)
	b = binenc.AppendU64(b, r.Cost.Total)
	return binenc.AppendU64(b, uint64(r.Time))
}

// Marshal encodes r, signature included: a magic, a version byte, the fields
// in order, then the signature with a u32 length (0 or 64 bytes).
func (r *Receipt) Marshal() []byte {
	return binenc.AppendBytes(r.appendUnsigned(nil), r.Signature)
}

// ParseReceipt parses the output of Marshal. It checks structure only; see
// Verify and ClientSession.CheckReceipt.
func ParseReceipt(b []byte) (*Receipt, error) {
	d := binenc.NewDecoder(b)
	d.Magic(receiptMagic, receiptVersion)
	r := new(Receipt)
	d.Fixed("request id", r.RequestID[:])
	d.Fixed("header hash", r.HeaderHash[:])
	d.Fixed("request hash", r.RequestHash[:])
	d.Fixed("response hash", r.ResponseHash[:])
	d.Fixed("worker", r.Worker[:])
	r.Model = string(d.BytesNoCopy("model", 1, MaxModel))
	r.Usage = price.Usage{PromptTokens: d.U64("usage"), CachedTokens: d.U64("usage"), CompletionTokens: d.U64("usage")}
	r.Price = readPrice(d, "price")
	r.Cost = price.Cost{Prompt: d.U64("cost"), Completion: d.U64("cost"), Total: d.U64("cost")}
	r.Time = int64(d.U64("time"))
	r.Signature = d.Bytes("signature", 0, sigSize) // nil when unsigned
	if n := len(r.Signature); n != 0 && n != sigSize {
		d.Failf("signature of %d bytes", n)
	}
	if err := d.Finish(); err != nil {
		return nil, parseError("receipt", err)
	}
	return r, nil
}

// checkCost reports whether r.Cost is r.Price.Cost(r.Usage).
func (r *Receipt) checkCost() error {
	c, err := r.Price.Cost(r.Usage)
	if err != nil {
		return fmt.Errorf("seal: receipt for request %x: %w: %w", r.RequestID, ErrCost, err)
	}
	if c != r.Cost {
		return fmt.Errorf("seal: receipt for request %x: cost %+v, usage at price costs %+v: %w", r.RequestID, r.Cost, c, ErrCost)
	}
	return nil
}

// Sign signs r with the worker's key k, after checking that its cost is its
// price times its usage: a worker never signs a receipt that cannot verify.
func (r *Receipt) Sign(k ed25519.PrivateKey) error {
	if len(k) != ed25519.PrivateKeySize {
		return fmt.Errorf("seal: sign receipt: private key of %d bytes: %w", len(k), ErrMalformed)
	}
	if err := r.checkCost(); err != nil {
		return err
	}
	r.Signature = ed25519.Sign(k, signedMessage(tagReceipt, r.appendUnsigned(nil)))
	return nil
}

// Verify checks that r is signed by pub and that its cost is its price
// times its usage.
func (r *Receipt) Verify(pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("seal: verify receipt: public key of %d bytes: %w", len(pub), ErrMalformed)
	}
	if !verifyEd25519(pub, signedMessage(tagReceipt, r.appendUnsigned(nil)), r.Signature) {
		return fmt.Errorf("seal: receipt for request %x by worker %x: %w", r.RequestID, r.Worker, ErrSignature)
	}
	return r.checkCost()
}
