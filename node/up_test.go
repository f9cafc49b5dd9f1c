package node

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/cocoon-go/cocoon/api"
	"github.com/cocoon-go/cocoon/attest/simulated"
	"github.com/cocoon-go/cocoon/chain/local"
	"github.com/cocoon-go/cocoon/internal/waitfor"
	"github.com/cocoon-go/cocoon/models"
)

// TestUpServesTheEmbeddedModel runs `cocoon up` in process with the default
// model and talks to it with the official SDK, then starts it again on the
// same data directory to check that identities persist.
func TestUpServesTheEmbeddedModel(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	n, err := Up(context.Background(), UpConfig{DataDir: dir, Addr: "127.0.0.1:0", Workers: 2}, log)
	if err != nil {
		t.Fatal(err)
	}
	sdk := openai.NewClient(option.WithBaseURL(n.BaseURL), option.WithAPIKey("unused"), option.WithMaxRetries(0))
	ctx := context.Background()
	params := openai.ChatCompletionNewParams{
		Model:       models.Name,
		Messages:    []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Quote Genesis 1:3")},
		MaxTokens:   openai.Int(16),
		Temperature: openai.Float(0),
	}
	first, err := sdk.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if first.Usage.CompletionTokens == 0 || first.Usage.CompletionTokens > 16 || first.Usage.PromptTokens == 0 {
		t.Errorf("usage %+v", first.Usage)
	}
	if !strings.Contains(first.Usage.RawJSON(), `"total_cost"`) {
		t.Errorf("usage carries no cost: %s", first.Usage.RawJSON())
	}
	// Greedy decoding is deterministic, whichever worker serves it.
	second, err := sdk.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if first.Choices[0].Message.Content != second.Choices[0].Message.Content {
		t.Errorf("greedy answers differ: %q vs %q", first.Choices[0].Message.Content, second.Choices[0].Message.Content)
	}
	// The network settles on a local chain whose root contract allows the
	// simulated image and the embedded model; the manifest names its accounts.
	man, err := ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if man.Chain != "local" || man.Root != n.Root.String() || len(man.Accounts) != 5 {
		t.Errorf("manifest %+v", man)
	}
	meas, allowed, err := RootPolicy(ctx, n.Chain, n.Root)
	if err != nil {
		t.Fatal(err)
	}
	if len(meas) != 1 || meas[0] != hex.EncodeToString(simulated.Measurement[:]) || len(allowed) != 1 || allowed[0] != n.engine.Models()[0].Hash {
		t.Errorf("root allows measurements %v and models %v", meas, allowed)
	}
	pin := n.Proxy.Pin
	key, _ := os.ReadFile(filepath.Join(dir, "worker-1", "keys", "signing.key"))
	n.Close()
	// Every role counted its money on the one registry: vouchers sent and
	// accepted at both legs, and the claims of a clean stop.
	for _, s := range []string{
		`cocoon_client_vouchers_sent_total{outcome="delivered"}`,
		`cocoon_proxy_vouchers_received_total{outcome="accepted"}`,
		`cocoon_proxy_vouchers_sent_total{outcome="delivered"}`,
		`cocoon_proxy_claims_total{outcome="ok"}`,
		`cocoon_worker_vouchers_received_total{outcome="accepted",worker="worker-1"}`,
		`cocoon_client_requests_total{class="2xx",code=""}`,
	} {
		if v := gathered(t, n.Registry)[s]; v < 1 {
			t.Errorf("%s = %v after two paid answers", s, v)
		}
	}

	n, err = Up(context.Background(), UpConfig{DataDir: dir, Addr: "127.0.0.1:0", Workers: 1}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if man2, _ := ReadManifest(dir); man2 == nil || man2.Root != man.Root || man2.Accounts[1].Address != man.Accounts[1].Address {
		t.Error("the root or the client's wallet changed across restarts")
	}
	if n.Proxy.Pin != pin {
		t.Error("the proxy's TLS key changed across restarts")
	}
	if again, _ := os.ReadFile(filepath.Join(dir, "worker-1", "keys", "signing.key")); string(again) != string(key) || len(key) == 0 {
		t.Error("worker-1's signing key changed across restarts")
	}
	// The proxy's books survived the restart.
	if got := n.Proxy.Ledger().Client(n.Client.Account()).Requests; got != 2 {
		t.Errorf("books after restart: %d requests, want 2", got)
	}
}

// TestUpPaysAsItServes: over a session, the client's vouchers add up to the
// costs it was shown, workers are paid for what they served, the proxy keeps
// the difference, a clean stop claims every voucher on chain, and the chain
// conserves value.
func TestUpPaysAsItServes(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	// Two sessions on the same data directory: a restart of every role in
	// between must lose no voucher and pay nothing twice.
	var shown, workersEarned, promised uint64
	earned := map[[32]byte]uint64{} // by worker key id, which a restart within a second keeps
	for session := range 2 {
		n, err := Up(context.Background(), UpConfig{DataDir: dir, Addr: "127.0.0.1:0", Workers: 2}, log)
		if err != nil {
			t.Fatal(err)
		}
		sdk := openai.NewClient(option.WithBaseURL(n.BaseURL), option.WithAPIKey("unused"), option.WithMaxRetries(0))
		for i := range 6 {
			resp, err := sdk.Completions.New(context.Background(), openai.CompletionNewParams{Model: openai.CompletionNewParamsModel(models.Name),
				Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String(fmt.Sprintf("And it came to pass %d %d", session, i))}, MaxTokens: openai.Int(8)})
			if err != nil {
				t.Fatal(err)
			}
			var u api.Usage
			json.Unmarshal([]byte(resp.Usage.RawJSON()), &u)
			shown += u.TotalCost
		}
		// The proxy books a receipt just after relaying it: wait for the last.
		waitfor.Until(t, "the proxy to book every answer", func() bool {
			return n.Proxy.Ledger().Client(n.Client.Account()).Requests >= uint64(6*(session+1))
		})
		n.Proxy.Flush()
		for _, w := range n.Workers {
			id := w.KeyID()
			earned[id] = n.Proxy.Ledger().Worker(hex.EncodeToString(id[:])).Amount
		}
		promised = 0
		for _, p := range n.ends.workerPayers {
			promised += p.Total()
		}
		if got := n.ends.clientPayer.Total(); got != shown {
			t.Errorf("session %d: client's voucher total %d, want the %d nanoTON it was shown", session, got, shown)
		}
		if err := n.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
	}
	for _, e := range earned {
		workersEarned += e
	}
	if promised != workersEarned {
		t.Errorf("the proxy's vouchers to workers total %d, its books say they earned %d", promised, workersEarned)
	}
	if shown == 0 || workersEarned == 0 || workersEarned >= shown {
		t.Fatalf("shown %d, workers earned %d", shown, workersEarned)
	}

	st, err := ReadStatus(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	var fromClient, toWorkers uint64
	if len(st.Channels) != 3 {
		t.Fatalf("channels %+v, want client→proxy and two proxy→worker", st.Channels)
	}
	for _, c := range st.Channels {
		if c.VoucherTotal != c.Claimed || c.State != "open" {
			t.Errorf("after a clean stop, channel %s→%s holds a voucher of %d with %d claimed (%s)", c.Payer, c.Payee, c.VoucherTotal, c.Claimed, c.State)
		}
		switch {
		case c.Payer == "client":
			fromClient += c.Claimed
		case c.Payer == "proxy":
			toWorkers += c.Claimed
		}
	}
	if fromClient != shown {
		t.Errorf("claimed from the client's channel: %d, want %d", fromClient, shown)
	}
	if toWorkers != workersEarned {
		t.Errorf("claimed by workers: %d, want %d", toWorkers, workersEarned)
	}
	c, err := local.Open(filepath.Join(dir, "chain"), &local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if s := c.Supply(); !s.Conserved() {
		t.Errorf("chain does not conserve value: %+v", s)
	}
}
