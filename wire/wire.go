// Package wire defines the messages that Cocoon's roles exchange besides the
// sealed envelope itself: the worker's hello, the proxy's directory of
// workers, and the clear error records of a response stream.
//
// Paths:
//
//	worker  ← proxy   GET  /cocoon/v1/hello      Hello (JSON)
//	worker  ← proxy   POST /cocoon/v1/run        envelope in, records out
//	proxy   ← client  GET  /cocoon/v1/directory  Directory (JSON)
//	proxy   ← client  POST /cocoon/v1/requests   envelope in, records out
//	proxy   ← client  POST /cocoon/v1/vouchers   payments.VoucherPost (the client pays)
//	worker  ← proxy   POST /cocoon/v1/vouchers   payments.VoucherPost (the proxy pays)
//
// The voucher post's format and transport belong to package payments; this
// package holds messages only and imports nothing of TON.
//
// The worker dials the proxy and then serves HTTP/2 on that connection, so the
// proxy is the HTTP client of the worker although the worker opened the TCP
// connection: workers sit behind NAT and need no open port.
package wire

import (
	"encoding/json"
	"fmt"

	"github.com/cocoon-go/cocoon/api"
	"github.com/cocoon-go/cocoon/price"
)

// Paths of the Cocoon protocol.
const (
	PathHello     = "/cocoon/v1/hello"
	PathRun       = "/cocoon/v1/run"
	PathDirectory = "/cocoon/v1/directory"
	PathRequests  = "/cocoon/v1/requests"
	PathVouchers  = "/cocoon/v1/vouchers" // client → proxy and proxy → worker: payments.VoucherPost
)

// Content types.
const (
	ContentEnvelope = "application/x-cocoon-envelope"
	ContentRecords  = "application/x-cocoon-records"
)

// ALPN is the TLS application protocol of the worker link.
const ALPN = "cocoon-worker/1"

// MaxHelloSize bounds a Hello as JSON: evidence of attest.MaxEvidenceSize
// bytes is a third larger in base64, and the rest is small.
const MaxHelloSize = 2 << 20

// MaxPreviousKeys is how many superseded key bundles a worker keeps
// accepting requests for, and a proxy keeps routing to the same connection,
// until each expires. A refresh of evidence (every 30 minutes with GPU
// evidence) makes a new bundle with the same keys; a client may still hold
// the previous one for a while, and its sealed requests stay valid for
// minutes.
const MaxPreviousKeys = 4

// Hello is what a worker tells a proxy about itself when it connects.
type Hello struct {
	Name     string      `json:"name"`
	Evidence []byte      `json:"evidence"` // attest.Evidence, marshalled
	Price    price.Price `json:"price"`
	Capacity int         `json:"capacity"`         // requests it serves at once
	Models   []string    `json:"models"`           // names apps use
	Payout   string      `json:"payout,omitempty"` // the wallet the worker is paid to
}

// Directory lists the workers a proxy can route to.
type Directory struct {
	Workers []WorkerInfo `json:"workers"`
	// Payee says how to pay this proxy, if it takes payments by channel.
	Payee *Payee `json:"payee,omitempty"`
}

// Payee is what a client needs to open a payment channel to a proxy.
type Payee struct {
	Address string `json:"address"` // the proxy's wallet
	Key     []byte `json:"key"`     // the proxy's Ed25519 key, the channel's payee key
}

// WorkerInfo is one worker in a Directory.
type WorkerInfo struct {
	Evidence []byte      `json:"evidence"`
	Price    price.Price `json:"price"`
	Capacity int         `json:"capacity"`
	InFlight int         `json:"in_flight"`
	Models   []string    `json:"models"`
}

// ErrorRecord is the payload of a seal.RecordError: a clear error from the
// worker or the proxy about a request, with the status the app should see.
// Once a worker has opened a request, the clear part of its errors is a
// fixed code (status, type, code, retry and a message naming the code), and
// the error itself, message and param included, travels in Error.Sealed.
type ErrorRecord struct {
	api.Error
	// Retry says that another worker may well succeed: nothing was streamed
	// and the failure was this worker's, not the request's.
	Retry bool `json:"retry,omitempty"`
}

// MarshalErrorRecord encodes an error record.
func MarshalErrorRecord(status int, typ, code, msg string, retry bool) []byte {
	b, _ := json.Marshal(ErrorRecord{Error: api.Error{Status: status, Type: typ, Code: code, Message: msg}, Retry: retry})
	return b
}

// errorRecordJSON carries the status, which api.Error keeps out of its JSON.
type errorRecordJSON struct {
	Status  int    `json:"status"`
	Message string `json:"message"`
	Type    string `json:"type"`
	Param   string `json:"param,omitempty"`
	Code    string `json:"code,omitempty"`
	Retry   bool   `json:"retry,omitempty"`
	Sealed  []byte `json:"sealed,omitempty"`
}

// MarshalJSON includes the HTTP status.
func (e ErrorRecord) MarshalJSON() ([]byte, error) {
	return json.Marshal(errorRecordJSON{e.Status, e.Message, e.Type, e.Param, e.Code, e.Retry, e.Sealed})
}

// ParseErrorRecord decodes an error record.
func ParseErrorRecord(b []byte) (*ErrorRecord, error) {
	var j errorRecordJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("wire: bad error record: %w", err)
	}
	if j.Status < 400 || j.Status > 599 {
		j.Status = 502
	}
	return &ErrorRecord{Error: api.Error{Status: j.Status, Message: j.Message, Type: j.Type, Param: j.Param, Code: j.Code, Sealed: j.Sealed}, Retry: j.Retry}, nil
}
