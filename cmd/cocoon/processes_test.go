package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/cocoon-go/cocoon/engine/enginetest"
	"github.com/cocoon-go/cocoon/models"
)

// TestMain lets the test binary stand in for the cocoon command, so the
// integration test below runs every role as a real, separate OS process.
func TestMain(m *testing.M) {
	if os.Getenv("COCOON_TEST_AS_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// process is one running cocoon command.
type process struct {
	name string
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  strings.Builder
	line chan string
}

func start(t *testing.T, name string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "COCOON_TEST_AS_MAIN=1")
	stderr, _ := cmd.StderrPipe()
	cmd.Stdout = cmd.Stderr
	p := &process{name: name, cmd: cmd, line: make(chan string, 1024)}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.out.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			select {
			case p.line <- sc.Text():
			default:
			}
		}
		close(p.line)
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		if t.Failed() {
			t.Logf("--- %s output:\n%s", name, p.output())
		}
	})
	return p
}

func (p *process) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// await returns the submatches of the first output line matching re.
func (p *process) await(t *testing.T, re string) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	timeout := time.After(60 * time.Second)
	for {
		select {
		case l, ok := <-p.line:
			if !ok {
				t.Fatalf("%s exited before printing %q", p.name, re)
			}
			if m := rx.FindStringSubmatch(l); m != nil {
				return m
			}
		case <-timeout:
			t.Fatalf("%s did not print %q within 60s", p.name, re)
		}
	}
}

// stop interrupts the process as Ctrl-C would and checks it exits 0 quickly.
func (p *process) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("%s exited with %v after SIGINT", p.name, err)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("%s still running 5s after SIGINT", p.name)
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestRolesAsSeparateProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	dir := t.TempDir()
	fake := enginetest.NewFakeServer(enginetest.FakeOptions{Answer: "relayed from an engine over HTTP"})
	defer fake.Close()

	trust := simulatedTEE(t, filepath.Join(dir, "tee"))

	// The proxy takes no payments here, so it serves the client key it is
	// told to: `cocoon client account` makes it and prints it.
	acct := exec.Command(os.Args[0], "client", "account", "--data-dir", filepath.Join(dir, "client"))
	acct.Env = append(os.Environ(), "COCOON_TEST_AS_MAIN=1")
	out, err := acct.Output()
	account := strings.TrimSpace(string(out))
	if err != nil || len(account) != 64 {
		t.Fatalf("client account: %v %q", err, out)
	}
	proxy := start(t, "proxy", append([]string{"proxy", "--data-dir", filepath.Join(dir, "proxy"),
		"--listen", "127.0.0.1:0", "--worker-listen", "127.0.0.1:0", "--client", account}, trust...)...)
	m := proxy.await(t, `proxy ready: clients (https://\S+), workers (\S+), pin ([0-9a-f]{64})`)
	proxyURL, workerAddr, pin := m[1], m[2], m[3]

	w1 := start(t, "worker-remote", "worker", "--data-dir", filepath.Join(dir, "w1"), "--name", "w1",
		"--proxy", workerAddr, "--proxy-pin", pin, "--simulated-tee", filepath.Join(dir, "tee"), "--engine-url", fake.URL)
	w2 := start(t, "worker-embedded", "worker", "--data-dir", filepath.Join(dir, "w2"), "--name", "w2",
		"--proxy", workerAddr, "--proxy-pin", pin, "--simulated-tee", filepath.Join(dir, "tee"))
	w1.await(t, "connected to proxy")
	w2.await(t, "connected to proxy")

	// The client reads part of its configuration from a file.
	cfgPath := filepath.Join(dir, "client.json")
	cfg, _ := json.Marshal(map[string]any{"client": map[string]any{"proxy": proxyURL, "proxy_pin": pin},
		"trust": map[string]any{"simulated_roots": []string{trust[1]}, "simulated_measurements": []string{trust[3]}}})
	os.WriteFile(cfgPath, cfg, 0o600)
	addr := freeAddr(t)
	client := start(t, "client", "client", "--config", cfgPath, "--data-dir", filepath.Join(dir, "client"), "--addr", addr)
	base := client.await(t, `OpenAI base URL (\S+)`)[1]

	sdk := openai.NewClient(option.WithBaseURL(base), option.WithAPIKey("unused"), option.WithMaxRetries(0))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var ids []string
	for deadline := time.Now().Add(20 * time.Second); len(ids) < 2 && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		list, err := sdk.Models.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ids = ids[:0]
		for _, m := range list.Data {
			ids = append(ids, m.ID)
		}
	}
	if strings.Join(ids, ",") != enginetest.DefaultModel+","+models.Name && strings.Join(ids, ",") != models.Name+","+enginetest.DefaultModel {
		t.Fatalf("models = %v", ids)
	}

	resp, err := sdk.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: enginetest.DefaultModel,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hello")}})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Choices[0].Message.Content; got != "relayed from an engine over HTTP" {
		t.Errorf("remote engine answered %q", got)
	}
	if !strings.Contains(string(fake.LastBody()), "hello") {
		t.Errorf("engine got %s", fake.LastBody())
	}

	stream := sdk.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{Model: models.Name, MaxTokens: openai.Int(12),
		Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Tell me about light")},
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}})
	var usage openai.CompletionUsage
	for stream.Next() {
		if c := stream.Current(); c.Usage.TotalTokens > 0 {
			usage = c.Usage
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if usage.CompletionTokens == 0 || usage.CompletionTokens > 12 || !strings.Contains(usage.RawJSON(), `"total_cost"`) {
		t.Errorf("embedded stream usage = %s", usage.RawJSON())
	}

	comp, err := sdk.Completions.New(ctx, openai.CompletionNewParams{Model: openai.CompletionNewParamsModel(models.Name),
		Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("In the beginning")}, MaxTokens: openai.Int(8)})
	if err != nil {
		t.Fatal(err)
	}
	if comp.Usage.CompletionTokens == 0 || comp.Usage.CompletionTokens > 8 {
		t.Errorf("completion usage = %+v", comp.Usage)
	}

	// Every role stops cleanly on Ctrl-C; the proxy booked what the client saw.
	for _, p := range []*process{client, w1, w2, proxy} {
		p.stop(t)
	}
	ledger, err := os.ReadFile(filepath.Join(dir, "proxy", "ledger.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	receipts, _ := os.ReadFile(filepath.Join(dir, "client", "receipts.jsonl"))
	if n := strings.Count(string(ledger), "\n"); n != 3 || strings.Count(string(receipts), "\n") != 3 {
		t.Errorf("proxy booked %d answers, client kept %d receipts; want 3 and 3", n, strings.Count(string(receipts), "\n"))
	}
}
