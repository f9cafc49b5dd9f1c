package node

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/cocoon-go/cocoon/engine/enginetest"
)

// BenchmarkSettlement counts the on-chain transactions a `cocoon up` network
// makes per 1,000 requests, settlement on stop included ("tx/1000req"), and
// the gas its claims burn. The engine is an instant fake, so the figure is the
// network's, not the model's. Run with -benchtime 1000x.
func BenchmarkSettlement(b *testing.B) {
	fake := enginetest.NewFakeServer(enginetest.FakeOptions{Answer: "an answer of some words"})
	defer fake.Close()
	n, err := Up(context.Background(), UpConfig{DataDir: b.TempDir(), Addr: "127.0.0.1:0", Workers: 2, Engine: EngineConfig{URL: fake.URL}}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	before := n.Chain.Status().Transactions
	body := `{"model":"fake-model","messages":[{"role":"user","content":"hello"}]}`
	b.ResetTimer()
	for range b.N {
		resp, err := http.Post(n.BaseURL+"/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("HTTP %d", resp.StatusCode)
		}
	}
	b.StopTimer()
	c := n.Chain
	// Close settles (claims) but also closes the chain; count through a
	// second handle afterwards is not possible, so settle first by closing
	// the roles and read the count from the snapshot the chain keeps.
	if err := n.closeRoles(); err != nil {
		b.Fatal(err)
	}
	after := c.Status().Transactions
	n.closeChain()
	b.ReportMetric(float64(after-before)*1000/float64(b.N), "tx/1000req")
}
