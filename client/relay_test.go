package client

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cocoon-go/cocoon/accounts"
	"github.com/cocoon-go/cocoon/api"
	"github.com/cocoon-go/cocoon/attest"
	"github.com/cocoon-go/cocoon/attest/simulated"
	"github.com/cocoon-go/cocoon/engine/enginetest"
	"github.com/cocoon-go/cocoon/seal"
	"github.com/cocoon-go/cocoon/wire"
	cocoonworker "github.com/cocoon-go/cocoon/worker"
)

// record is one record of a worker's answer, as the proxy relays it.
type record struct {
	typ     seal.RecordType
	payload []byte
}

// fakeProxy is a test proxy in front of one real worker (simulated TEE,
// fake engine), run in process: it lists the worker in its directory and
// relays each envelope to it, handing the client the worker's records
// through edit, which may drop, change or cut them as a dishonest or broken
// proxy would.
type fakeProxy struct {
	url string

	mu   sync.Mutex
	edit func(n int, recs []record) []record // n counts the requests from 0; nil: relay as is
	n    int
}

// proxyPin is the pin of the fake proxy: it serves plain HTTP, so any
// hash stands for its TLS key.
var proxyPin = hex.EncodeToString(bytes.Repeat([]byte{7}, 32))

func newFakeProxy(t *testing.T) (*fakeProxy, *attest.Checker) {
	t.Helper()
	vendor, err := simulated.NewVendor(bytes.Repeat([]byte{1}, simulated.SeedSize))
	if err != nil {
		t.Fatal(err)
	}
	id, err := cocoonworker.LoadIdentity(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	w, err := cocoonworker.New(cocoonworker.Config{}, id, &enginetest.FakeEngine{Text: "one two three"}, vendor.Device(simulated.Measurement), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	w.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, wire.PathHello, nil))
	var h wire.Hello
	if err := json.NewDecoder(rec.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	dir := wire.Directory{Workers: []wire.WorkerInfo{{Evidence: h.Evidence, Price: h.Price, Capacity: h.Capacity, Models: h.Models}}}

	p := &fakeProxy{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+wire.PathDirectory, func(rw http.ResponseWriter, r *http.Request) { json.NewEncoder(rw).Encode(dir) })
	mux.HandleFunc("POST "+wire.PathRequests, func(rw http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		w.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, wire.PathRun, r.Body))
		if rec.Code != http.StatusOK {
			rw.WriteHeader(rec.Code)
			io.Copy(rw, rec.Body)
			return
		}
		var recs []record
		for rr := seal.NewRecordReader(rec.Body); ; {
			typ, payload, err := rr.Next()
			if err != nil {
				break
			}
			recs = append(recs, record{typ, bytes.Clone(payload)})
		}
		p.mu.Lock()
		edit, n := p.edit, p.n
		p.n++
		p.mu.Unlock()
		if edit != nil {
			recs = edit(n, recs)
		}
		rw.Header().Set("Content-Type", wire.ContentEnvelope)
		for _, r := range recs {
			seal.WriteRecord(rw, r.typ, r.payload)
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	p.url = srv.URL
	return p, &attest.Checker{
		Verifiers: []attest.Verifier{attest.NewSimulatedVerifier(vendor.Roots())},
		Policy:    attest.Policy{SimulatedMeasurements: [][32]byte{simulated.Measurement}, MaxAge: time.Hour},
	}
}

// setEdit makes the proxy hand over what edit makes of each answer's records.
func (p *fakeProxy) setEdit(edit func(n int, recs []record) []record) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.edit = edit
}

// newRelayClient is a client of p that trusts its worker and books in a journal.
func newRelayClient(t *testing.T, p *fakeProxy, checker *attest.Checker) (*Client, accounts.Ledger) {
	t.Helper()
	journal, err := accounts.OpenFile(filepath.Join(t.TempDir(), "journal"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { journal.Close() })
	c := newTestClient(t, p.url, Config{ProxyPin: proxyPin})
	c.attest, c.journal = attest.NewCache(checker), journal
	return c, journal
}

// ask posts body to the client's chat API as an app would and returns the response.
func ask(c *Client, body string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	c.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(body)))
	return rec
}

const (
	streamed    = `{"model":"` + enginetest.DefaultModel + `","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}`
	notStreamed = `{"model":"` + enginetest.DefaultModel + `","messages":[{"role":"user","content":"hi"}]}`
)

// events splits an SSE body into its data payloads.
func events(t *testing.T, body string) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			out = append(out, data)
		}
	}
	return out
}

// usageOf is the usage in an SSE event or response object, nil if none.
func usageOf(t *testing.T, data string) *api.Usage {
	t.Helper()
	var v struct {
		Usage *api.Usage `json:"usage"`
	}
	if err := json.Unmarshal([]byte(data), &v); err != nil {
		t.Fatalf("%q: %v", data, err)
	}
	return v.Usage
}

// errorOf is the error in an SSE event, nil if none.
func errorOf(data string) *api.Error {
	var v struct {
		Error *api.Error `json:"error"`
	}
	json.Unmarshal([]byte(data), &v)
	return v.Error
}

// An honest stream ends with the usage the worker's receipt signs, then
// [DONE], and is booked at the receipt's cost.
func TestRelayStreamEndsWithTheReceiptsUsage(t *testing.T) {
	p, checker := newFakeProxy(t)
	c, journal := newRelayClient(t, p, checker)
	rec := ask(c, streamed)
	ev := events(t, rec.Body.String())
	if rec.Code != http.StatusOK || len(ev) < 3 || ev[len(ev)-1] != "[DONE]" {
		t.Fatalf("HTTP %d, events %q; want chunks, usage and [DONE]", rec.Code, ev)
	}
	u := usageOf(t, ev[len(ev)-2])
	booked := journal.Client(c.Account())
	if u == nil || u.CompletionTokens == 0 || u.TotalCost == 0 || booked.Requests != 1 || booked.Amount != u.TotalCost {
		t.Fatalf("usage before [DONE] %+v, booked %+v; want the receipt's usage, booked at its cost", u, booked)
	}
	var text strings.Builder
	for _, e := range ev[:len(ev)-2] {
		var chunk api.ChatCompletionChunk
		if err := json.Unmarshal([]byte(e), &chunk); err != nil {
			t.Fatalf("event %q: %v", e, err)
		}
		for _, ch := range chunk.Choices {
			text.WriteString(ch.Delta.Content)
		}
	}
	if text.String() != "one two three" {
		t.Errorf("streamed text %q", text.String())
	}
}

// The receipt is checked before [DONE]: a receipt the worker did not sign,
// or one replayed from an earlier answer, ends the stream with an error
// event instead, and nothing is booked or paid.
func TestRelayChecksTheReceiptBeforeDone(t *testing.T) {
	p, checker := newFakeProxy(t)
	c, journal := newRelayClient(t, p, checker)
	var first []byte // the receipt of the first answer
	p.setEdit(func(n int, recs []record) []record {
		last := &recs[len(recs)-1]
		if last.typ != seal.RecordReceipt {
			t.Errorf("the worker's answer ends with a %v record", last.typ)
			return recs
		}
		switch n {
		case 0:
			first = last.payload
		case 1: // a forged signature
			last.payload = bytes.Clone(last.payload)
			last.payload[len(last.payload)-1] ^= 1
		case 2: // the first answer's receipt, replayed
			last.payload = first
		}
		return recs
	})
	if ev := events(t, ask(c, streamed).Body.String()); len(ev) == 0 || ev[len(ev)-1] != "[DONE]" {
		t.Fatalf("an honest answer: %q", ev)
	}
	before := journal.Client(c.Account())
	for _, name := range []string{"a forged receipt", "a replayed receipt"} {
		rec := ask(c, streamed)
		ev := events(t, rec.Body.String())
		if rec.Code != http.StatusOK || len(ev) < 2 {
			t.Fatalf("%s: HTTP %d, events %q", name, rec.Code, ev)
		}
		if e := errorOf(ev[len(ev)-1]); e == nil || e.Code != "bad_receipt" || strings.Contains(rec.Body.String(), "[DONE]") {
			t.Errorf("%s: stream ends with %q, want a bad_receipt error event and no [DONE]", name, ev[len(ev)-1])
		}
		for _, e := range ev {
			if e != "[DONE]" && errorOf(e) == nil && usageOf(t, e) != nil {
				t.Errorf("%s: usage shown before the receipt was checked: %s", name, e)
			}
		}
	}
	if after := journal.Client(c.Account()); after != before {
		t.Errorf("books moved from %+v to %+v on refused receipts", before, after)
	}
}

// A stream the proxy cuts, before the receipt or mid-answer, reaches the
// app as an error event, never as a short answer; cut before anything was
// relayed, it is an HTTP error.
func TestRelayCutStreamIsAnError(t *testing.T) {
	p, checker := newFakeProxy(t)
	c, journal := newRelayClient(t, p, checker)
	for _, keep := range []int{-1, 2, 0} { // -1: all but the receipt; else the first keep records
		p.setEdit(func(_ int, recs []record) []record {
			if keep < 0 {
				return recs[:len(recs)-1]
			}
			return recs[:keep]
		})
		rec := ask(c, streamed)
		body := rec.Body.String()
		if keep == 0 {
			if e := api.ParseError(rec.Code, rec.Body.Bytes()); rec.Code != http.StatusBadGateway || e.Code != "stream_broken" {
				t.Errorf("cut before the first record: HTTP %d %+v, want 502 stream_broken", rec.Code, e)
			}
			continue
		}
		ev := events(t, body)
		if len(ev) == 0 {
			t.Fatalf("cut after %d records: no events in %q", keep, body)
		}
		if e := errorOf(ev[len(ev)-1]); e == nil || e.Code != "stream_broken" || strings.Contains(body, "[DONE]") {
			t.Errorf("cut after %d records: stream ends with %q, want a stream_broken error event and no [DONE]", keep, ev[len(ev)-1])
		}
	}
	if got := journal.Client(c.Account()); got.Requests != 0 {
		t.Errorf("booked %+v for answers without a receipt", got)
	}
}

// A non-streamed answer is the worker's response object with the usage of
// its receipt merged in, cost included.
func TestRelayMergesUsageIntoAnAnswer(t *testing.T) {
	p, checker := newFakeProxy(t)
	c, journal := newRelayClient(t, p, checker)
	rec := ask(c, notStreamed)
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("HTTP %d, %s: %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	var resp api.ChatCompletion
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	booked := journal.Client(c.Account())
	if len(resp.Choices) != 1 || resp.Choices[0].Message.Content != "one two three" {
		t.Errorf("answer %+v", resp)
	}
	if u := resp.Usage; u == nil || u.CompletionTokens == 0 || u.TotalTokens != u.PromptTokens+u.CompletionTokens ||
		u.TotalCost == 0 || u.TotalCost != booked.Amount || booked.Requests != 1 {
		t.Errorf("usage %+v, booked %+v; want the receipt's usage and cost", u, booked)
	}

	// Without its receipt the same answer is an error, not an answer without usage.
	p.setEdit(func(_ int, recs []record) []record { return recs[:len(recs)-1] })
	rec = ask(c, notStreamed)
	if e := api.ParseError(rec.Code, rec.Body.Bytes()); rec.Code != http.StatusBadGateway || e.Code != "stream_broken" {
		t.Errorf("a whole answer without its receipt: HTTP %d %s, want 502 stream_broken", rec.Code, rec.Body)
	}
}
