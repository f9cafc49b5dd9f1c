package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cocoon-go/cocoon/contracts"
	"github.com/cocoon-go/cocoon/identity"
)

// cocoon runs one cocoon command as a process (see TestMain) and returns its stdout and stderr.
func cocoon(args ...string) (stdout, stderr string, err error) {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "COCOON_TEST_AS_MAIN=1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

// must runs a command that must succeed and decodes its --json output into a map.
func must(t *testing.T, args ...string) map[string]any {
	t.Helper()
	out, errs, err := cocoon(append(args, "--json")...)
	if err != nil {
		t.Fatalf("cocoon %s: %v\n%s", strings.Join(args, " "), err, errs)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("cocoon %s: output is not one JSON object: %v\n%s", strings.Join(args, " "), err, out)
	}
	return v
}

// refused runs a command that must fail with an error saying want.
func refused(t *testing.T, want string, args ...string) {
	t.Helper()
	_, errs, err := cocoon(args...)
	if err == nil {
		t.Fatalf("cocoon %s succeeded, want an error saying %q", strings.Join(args, " "), want)
	}
	if !strings.Contains(errs, want) {
		t.Fatalf("cocoon %s: error does not say %q:\n%s", strings.Join(args, " "), want, errs)
	}
}

// nano reads a JSON amount: an integer nanoTON, never a float with a fraction.
func nano(t *testing.T, v any) uint64 {
	t.Helper()
	f, ok := v.(float64)
	if !ok || f != float64(uint64(f)) {
		t.Fatalf("amount %v is not an integer", v)
	}
	return uint64(f)
}

// TestMoneyCommands drives the wallet, root and channel commands as separate processes against one
// local chain directory, each process opening it in turn.
func TestMoneyCommands(t *testing.T) {
	dir := t.TempDir()
	ch := "--chain=local:" + filepath.Join(dir, "chain")
	payerKey, payeeKey := filepath.Join(dir, "payer.pem"), filepath.Join(dir, "payee.pem")

	payer := must(t, "wallet", "new", ch, "--key", payerKey)
	payee := must(t, "wallet", "new", ch, "--key", payeeKey)
	if fi, err := os.Stat(payerKey); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v; want 0600", err, fi.Mode())
	}
	refused(t, "already exists", "wallet", "new", ch, "--key", payerKey)
	A, B := payer["address"].(string), payee["address"].(string)

	refused(t, "not deployed and holds nothing", "wallet", "send", ch, "--key", payerKey, B, "1")
	must(t, "chain", "faucet", ch, A, "10")
	must(t, "chain", "faucet", ch, B, "1000000000n")
	if b := nano(t, must(t, "wallet", "balance", ch, "--key", payerKey)["balance"]); b != 10_000_000_000 {
		t.Fatalf("payer balance after the faucet = %d, want 10 TON", b)
	}
	refused(t, "not enough balance", "wallet", "send", ch, "--key", payerKey, B, "10")
	sent := must(t, "wallet", "send", ch, "--key", payerKey, B, "0.5", "--comment", "hello")
	if nano(t, sent["amount"]) != 500_000_000 || sent["comment"] != "hello" {
		t.Errorf("send: %v", sent)
	}
	// The payee's wallet is not deployed and pays a little storage; it got the 0.5 TON.
	if b := nano(t, must(t, "wallet", "balance", ch, B)["balance"]); b > 1_500_000_000 || b < 1_499_000_000 {
		t.Errorf("payee balance = %d, want about 1.5 TON", b)
	}
	shown := must(t, "wallet", "show", ch, "--key", payerKey)
	if shown["status"] != "active" || shown["seqno"] != 1.0 || shown["public_key"] != payer["public_key"] {
		t.Errorf("wallet show after one send: %v", shown)
	}

	// Root: deploy, allow a model and a measurement, change a price; show reflects it all.
	root := must(t, "root", "deploy", ch, "--key", payerKey, "--price-per-token", "2000")["address"].(string)
	model := strings.Repeat("ab", 32)
	measurement := strings.Repeat("cd", 32)
	must(t, "root", "allow-model", ch, "--key", payerKey, "--root", root, model)
	must(t, "root", "allow-measurement", ch, "--key", payerKey, "--root", root, measurement)
	must(t, "root", "set-prices", ch, "--key", payerKey, "--root", root, "--worker-fee", "1500", "--min-worker-stake", "2.5")
	refused(t, "not the owner", "root", "allow-model", ch, "--key", payeeKey, "--root", root, model)
	rs := must(t, "root", "show", ch, "--root", root)
	params := rs["params"].(map[string]any)
	if rs["owner"] != A || nano(t, params["price_per_token"]) != 2000 || nano(t, params["worker_fee"]) != 1500 ||
		nano(t, params["min_worker_stake"]) != 2_500_000_000 || nano(t, params["client_close_delay_s"]) != 3600 {
		t.Errorf("root show: %v", rs)
	}
	if models, ms := rs["models"].([]any), rs["worker_measurements"].([]any); len(models) != 1 || models[0] != model || len(ms) != 1 || ms[0] != measurement {
		t.Errorf("root show allow-lists: models %v, worker measurements %v", rs["models"], rs["worker_measurements"])
	}

	// Channel: open, top up, claim with a voucher signed here, refuse it again, claim a newer one
	// signed by the command, close, and finish after the delay.
	opened := must(t, "channel", "open", ch, "--key", payerKey, "--payee", B, "--payee-key", payee["public_key"].(string),
		"--deposit", "2", "--close-delay", "2s")
	chAddr := opened["address"].(string)
	must(t, "channel", "top-up", ch, "--key", payerKey, chAddr, "0.5")
	st := must(t, "channel", "show", ch, chAddr)
	if st["state"] != "open" || nano(t, st["deposit"]) != 2_500_000_000 || nano(t, st["claimed"]) != 0 || st["payer"] != A || st["payee"] != B {
		t.Fatalf("channel show after open and top-up: %v", st)
	}
	vkey, err := identity.LoadWalletKey(filepath.Join(dir, "payer.voucher.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if st["payer_key"] != hex.EncodeToString(vkey.Public().(ed25519.PublicKey)) {
		t.Fatalf("channel payer key %v is not the voucher key's", st["payer_key"])
	}
	id, _ := hex.DecodeString(st["channel_id"].(string))
	v1, _ := contracts.Voucher{ChannelID: [32]byte(id), Seqno: 1, Total: 700_000_000}.Sign(vkey).MarshalText()
	refused(t, "not the payee", "channel", "claim", ch, "--key", payerKey, chAddr, string(v1))
	if c := must(t, "channel", "claim", ch, "--key", payeeKey, chAddr, string(v1)); nano(t, c["claimed"]) != 700_000_000 || c["seqno"] != 1.0 {
		t.Fatalf("after the first claim: %v", c)
	}
	refused(t, "exit code 105 (stale voucher", "channel", "claim", ch, "--key", payeeKey, chAddr, string(v1))
	v2 := must(t, "channel", "voucher", ch, "--key", payerKey, chAddr, "--seqno", "2", "--total", "1")["voucher"].(string)
	if c := must(t, "channel", "claim", ch, "--key", payeeKey, chAddr, v2); nano(t, c["claimed"]) != 1_000_000_000 || c["seqno"] != 2.0 {
		t.Fatalf("after the second claim: %v", c)
	}

	refused(t, "start the close first", "channel", "close", ch, "--key", payerKey, chAddr, "--finish")
	closing := must(t, "channel", "close", ch, "--key", payerKey, chAddr)
	if closing["state"] != "closing" {
		t.Fatalf("after close: %v", closing)
	}
	refused(t, "too early", "channel", "close", ch, "--key", payerKey, chAddr, "--finish")
	// The local chain's clock is the wall clock (never going back); wait out the 2 s delay.
	time.Sleep(time.Until(time.Unix(int64(nano(t, closing["closable_at"])), 0)) + 100*time.Millisecond)
	before := nano(t, must(t, "wallet", "balance", ch, "--key", payerKey)["balance"])
	closed := must(t, "channel", "close", ch, "--key", payerKey, chAddr, "--finish")
	if closed["state"] != "closed" || nano(t, closed["balance"]) != 0 || nano(t, closed["locked"]) != 0 {
		t.Fatalf("after close --finish: %v", closed)
	}
	// The payer got back the 1.5 TON left unclaimed, plus what is left of the reserves, less its fees.
	if after := nano(t, must(t, "wallet", "balance", ch, "--key", payerKey)["balance"]); after < before+1_500_000_000 {
		t.Errorf("payer balance %d → %d: the unclaimed 1.5 TON did not come back", before, after)
	}
	refused(t, "exit code 108 (the channel is closed)", "channel", "top-up", ch, "--key", payerKey, chAddr, "0.1")
}

// TestChainServe serves a local chain from one process and uses it from others.
func TestChainServe(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "chain")
	srv := start(t, "chain serve", "chain", "serve", "--dir", dir, "--listen", "127.0.0.1:0")
	url := srv.await(t, `use it with: --chain (local\+http://\S+)`)[1]
	refused(t, "cocoon chain serve", "wallet", "new", "--chain", "local:"+dir, "--key", filepath.Join(t.TempDir(), "k.pem"))

	key := filepath.Join(t.TempDir(), "k.pem")
	w := must(t, "wallet", "new", "--chain", url, "--key", key)
	must(t, "chain", "faucet", "--chain", url, w["address"].(string), "3.25")
	if b := nano(t, must(t, "wallet", "balance", "--chain", url, "--key", key)["balance"]); b != 3_250_000_000 {
		t.Errorf("balance through the served chain = %d, want 3.25 TON", b)
	}
	srv.stop(t)
	// Stopped, the server has let go of the directory, which kept the credit.
	if b := nano(t, must(t, "wallet", "balance", "--chain", "local:"+dir, "--key", key)["balance"]); b != 3_250_000_000 {
		t.Errorf("balance after the server stopped = %d, want 3.25 TON", b)
	}
}
