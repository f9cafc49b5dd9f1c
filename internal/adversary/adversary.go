// Package adversary holds hostile test doubles for the roles of a Cocoon
// network: a malicious client that crafts, replays and abandons sealed
// requests by hand, and the engines and workers its tests pit against the
// real roles. Its tests are the adversarial suite: one test per attack,
// each of which failed before the fix that closed it. It is a test helper;
// nothing in the product imports it.
package adversary

import (
	"bytes"
	"context"
	"crypto/ed25519"
	crand "crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"io"
	"net/http"
	"time"

	"github.com/cocoon-go/cocoon/api"
	"github.com/cocoon-go/cocoon/attest"
	"github.com/cocoon-go/cocoon/price"
	"github.com/cocoon-go/cocoon/seal"
	"github.com/cocoon-go/cocoon/wire"
)

// Client is a malicious client: it holds an account key and talks to a
// proxy directly, sealing what it likes and reading (or not) what comes back.
type Client struct {
	Key      ed25519.PrivateKey
	ProxyURL string
	Proxy    [32]byte // the proxy's TLS key hash, which envelopes name
	HTTP     *http.Client
}

// NewClient returns a client with a fresh account key for the proxy at
// proxyURL, whose certificate it does not check.
func NewClient(proxyURL string) *Client {
	_, key, _ := ed25519.GenerateKey(nil)
	return &Client{Key: key, ProxyURL: proxyURL,
		HTTP: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}}}
}

// Account is the client's account id at proxies: its hex public key.
func (c *Client) Account() string { return hex.EncodeToString(c.Key.Public().(ed25519.PublicKey)) }

// Header is a header for a chat request to model with a fresh request id,
// valid for a minute.
func (c *Client) Header(model string) seal.Header {
	h := seal.Header{Endpoint: api.EndpointChat, Model: model, PriceCap: price.Default,
		Expires: time.Now().Add(time.Minute).Unix(), ClientKey: c.Key.Public().(ed25519.PublicKey), Proxy: c.Proxy}
	crand.Read(h.RequestID[:])
	return h
}

// Chat is a chat request body for model.
func Chat(model, prompt string) []byte {
	return []byte(`{"model":"` + model + `","messages":[{"role":"user","content":"` + prompt + `"}]}`)
}

// Seal seals body under h to the workers in to, signed by the client.
func (c *Client) Seal(h seal.Header, body []byte, to ...*attest.Verified) ([]byte, *seal.ClientSession, error) {
	rs := make([]seal.Recipient, len(to))
	for i, v := range to {
		rs[i] = seal.Recipient{KeyID: v.KeyID, PublicKey: v.Bundle.HPKEKey}
	}
	return seal.Seal(h, body, rs, c.Key)
}

// Response is what the proxy answered to a sealed request.
type Response struct {
	Status int
	Body   []byte // records, or an OpenAI error
}

// Error parses the body as an OpenAI error.
func (r *Response) Error() *api.Error { return api.ParseError(r.Status, r.Body) }

// Post sends raw to the proxy and reads the whole answer.
func (c *Client) Post(raw []byte) (*Response, error) {
	resp, err := c.HTTP.Post(c.ProxyURL+wire.PathRequests, wire.ContentEnvelope, bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return &Response{Status: resp.StatusCode, Body: b}, err
}

// PostAndHangUp sends raw to the proxy, waits for the first record of the
// answer and resets the stream: a client that takes what it can and leaves
// before the receipt.
func (c *Client) PostAndHangUp(raw []byte) (status int, err error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.ProxyURL+wire.PathRequests, bytes.NewReader(raw))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", wire.ContentEnvelope)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode == http.StatusOK {
		_, _, err = seal.NewRecordReader(resp.Body).Next()
	}
	cancel()
	resp.Body.Close()
	return resp.StatusCode, err
}
