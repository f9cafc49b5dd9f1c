package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/cocoon-go/cocoon/api"
	"github.com/cocoon-go/cocoon/engine/enginetest"
)

// TestSeparateProcessesPayByChannel runs a served local chain, a proxy, a
// worker and a client as separate processes, each with its own wallet: the
// client opens its channel to the proxy, the proxy opens one to the worker,
// and after a clean stop the chain shows the client paid exactly what it was
// shown and the worker got its vouchers' worth.
func TestSeparateProcessesPayByChannel(t *testing.T) {
	dir := t.TempDir()
	fake := enginetest.NewFakeServer(enginetest.FakeOptions{Answer: "paid for by the word"})
	defer fake.Close()

	served := start(t, "chain", "chain", "serve", "--dir", filepath.Join(dir, "chain"), "--listen", "127.0.0.1:0")
	url := served.await(t, `use it with: --chain (local\+http://\S+)`)[1]
	ch := "--chain=" + url
	keys := map[string]string{}
	for _, role := range []string{"owner", "proxy", "worker", "client"} {
		keys[role] = filepath.Join(dir, role+".wallet.pem")
		w := must(t, "wallet", "new", ch, "--key", keys[role])
		must(t, "chain", "faucet", ch, w["address"].(string), "50")
	}

	tee := exec.Command(os.Args[0], "simulated-tee", filepath.Join(dir, "tee"))
	tee.Env = append(os.Environ(), "COCOON_TEST_AS_MAIN=1")
	out, err := tee.CombinedOutput()
	if err != nil {
		t.Fatalf("simulated-tee: %v\n%s", err, out)
	}
	root := regexp.MustCompile(`vendor root:\s+(\S+)`).FindStringSubmatch(string(out))[1]
	meas := regexp.MustCompile(`measurement:\s+([0-9a-f]{64})`).FindStringSubmatch(string(out))[1]
	// The network's root contract allows the simulated image. Its list is
	// for real TEEs only: simulated evidence is checked against the
	// simulated allow-list alone, so the proxy and client need the flag too,
	// and without it refuse to start.
	rootAddr := must(t, "root", "deploy", ch, "--key", keys["owner"])["address"].(string)
	trust := []string{"--trust-simulated-root", root, "--root", rootAddr}
	refusedProxy := exec.Command(os.Args[0], append([]string{"proxy", "--data-dir", filepath.Join(dir, "p0"), "--listen", "127.0.0.1:0",
		"--worker-listen", "127.0.0.1:0", ch, "--wallet-key", keys["proxy"]}, trust...)...)
	refusedProxy.Env = append(os.Environ(), "COCOON_TEST_AS_MAIN=1")
	if out, err := refusedProxy.CombinedOutput(); err == nil || !regexp.MustCompile(`no simulated measurement is allowed`).Match(out) {
		t.Fatalf("a proxy trusting a simulated root but no simulated measurement started (%v):\n%s", err, out)
	}
	must(t, "root", "allow-measurement", ch, "--key", keys["owner"], "--root", rootAddr, meas)
	trust = append(trust, "--allow-simulated-measurement", meas)

	proxy := start(t, "proxy", append([]string{"proxy", "--data-dir", filepath.Join(dir, "proxy"), "--listen", "127.0.0.1:0",
		"--worker-listen", "127.0.0.1:0", ch, "--wallet-key", keys["proxy"], "--deposit", "5"}, trust...)...)
	m := proxy.await(t, `proxy ready: clients (https://\S+), workers (\S+), pin ([0-9a-f]{64})`)
	worker := start(t, "worker", "worker", "--data-dir", filepath.Join(dir, "worker"), "--proxy", m[2], "--proxy-pin", m[3],
		"--simulated-tee", filepath.Join(dir, "tee"), "--engine-url", fake.URL, ch, "--wallet-key", keys["worker"])
	worker.await(t, "connected to proxy")
	proxy.await(t, "channel to worker open")
	client := start(t, "client", append([]string{"client", "--data-dir", filepath.Join(dir, "client"), "--addr", freeAddr(t),
		"--proxy", m[1], "--proxy-pin", m[3], ch, "--wallet-key", keys["client"], "--deposit", "5"}, trust...)...)
	clientChannel := client.await(t, `paying the proxy by channel.* channel=(\S+)`)[1]
	base := client.await(t, `OpenAI base URL (\S+)`)[1]

	sdk := openai.NewClient(option.WithBaseURL(base), option.WithAPIKey("unused"), option.WithMaxRetries(0))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var shown uint64
	for range 5 {
		resp, err := sdk.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: enginetest.DefaultModel,
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("how much?")}})
		if err != nil {
			t.Fatal(err)
		}
		var u api.Usage
		json.Unmarshal([]byte(resp.Usage.RawJSON()), &u)
		shown += u.TotalCost
	}

	// A clean stop, payer before payee, settles every voucher.
	client.stop(t)
	proxy.stop(t)
	worker.stop(t)
	got := must(t, "channel", "show", ch, clientChannel)
	if claimed := nano(t, got["claimed"]); claimed != shown || shown == 0 {
		t.Errorf("the proxy claimed %d from the client's channel; the client was shown %d", claimed, shown)
	}
	workerChannel := regexp.MustCompile(`channel to worker open.* channel=(\S+)`).FindStringSubmatch(proxy.output())[1]
	got = must(t, "channel", "show", ch, workerChannel)
	if claimed := nano(t, got["claimed"]); claimed == 0 || claimed >= shown {
		t.Errorf("the worker claimed %d of the %d the client paid", claimed, shown)
	} else {
		t.Logf("client paid %d nanoTON; the worker claimed %d", shown, claimed)
	}
	served.stop(t)
}
