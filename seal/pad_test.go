package seal

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// tokenChunk is a streamed chat.completion.chunk carrying token, as vLLM
// writes them.
func tokenChunk(token string) []byte {
	b, _ := json.Marshal(map[string]any{
		"id": "chatcmpl-0123456789abcdef0123456789abcdef", "object": "chat.completion.chunk", "created": 1_764_700_000,
		"model": "meta-llama/Llama-3.1-8B-Instruct", "system_fingerprint": nil,
		"choices": []any{map[string]any{"index": 0, "delta": map[string]any{"content": token}, "logprobs": nil, "finish_reason": nil}},
	})
	return b
}

// One unpadded chunk per token once let the proxy read each token's length.
// Chunks of a stream now seal to one size whatever token they carry.
func TestChunkSizesHideTokenLengths(t *testing.T) {
	w := newTestWorker(t, KEMX25519, 1)
	raw, cs := mustSeal(t, testHeader(), []byte(testPrompt), w)
	_, _, ws := mustOpen(t, raw, w)
	ws.SealChunk(tokenChunk("Hello"), false) // chunk 0 also carries the salt
	sizes := map[int][]string{}
	for n := 1; n <= 24; n++ {
		for _, token := range []string{strings.Repeat("a", n), strings.Repeat("é", n/2+1), strings.Repeat("\"", n/4+1)} {
			c, err := ws.SealChunk(tokenChunk(token), false)
			if err != nil {
				t.Fatal(err)
			}
			sizes[len(c)] = append(sizes[len(c)], token)
		}
	}
	final, _ := ws.SealChunk(nil, true)
	sizes[len(final)] = append(sizes[len(final)], "(final)")
	if len(sizes) != 1 {
		t.Errorf("sealed chunk sizes differ by token: %v", sizes)
	}
	// And they open to exactly what was sealed.
	raw, cs = mustSeal(t, testHeader(), []byte(testPrompt), w)
	_, _, ws = mustOpen(t, raw, w)
	for _, p := range []string{"", "x", string(tokenChunk("tok")), strings.Repeat("z", MinPadded), strings.Repeat("y", MaxChunk)} {
		c, err := ws.SealChunk([]byte(p), false)
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := cs.OpenChunk(c)
		if err != nil || string(got) != p {
			t.Fatalf("chunk of %d bytes opened to %d bytes, %v", len(p), len(got), err)
		}
		if want := chunkHeaderSize + PaddedSize(lengthSize+len(p)) + tagSize; len(c) > want+saltSize || len(c) < want {
			t.Errorf("chunk of %d bytes sealed to %d, want %d (+salt on chunk 0)", len(p), len(c), want)
		}
	}
}

func TestPaddedSize(t *testing.T) {
	for n, want := range map[int]int{0: MinPadded, MinPadded: MinPadded, MinPadded + 1: 2 * MinPadded, 5000: 8192, MaxChunk + lengthSize: MaxChunk + lengthSize} {
		if got := PaddedSize(n); got != want {
			t.Errorf("PaddedSize(%d) = %d, want %d", n, got, want)
		}
	}
}

// BenchmarkChunkPadding measures what padding costs a stream of token
// chunks, padded and not, in one run: bytes on the wire per chunk (record
// header included) and time to seal and open.
func BenchmarkChunkPadding(b *testing.B) {
	tokens := []string{" the", " a", " quick", "ly", " brown", " fox", "es", " jumped", " over", ",", " 42", " é"}
	for _, mode := range []string{"padded", "unpadded"} {
		b.Run(mode, func(b *testing.B) {
			w := newTestWorker(b, KEMX25519, 1)
			h := testHeader()
			h.Expires = time.Now().Add(time.Hour).Unix()
			var wire int
			for b.Loop() {
				b.StopTimer()
				raw, cs := mustSeal(b, h, []byte(testPrompt), w)
				_, _, ws := mustOpen(b, raw, w)
				if mode == "unpadded" {
					ws.pad = func(n int) int { return n }
				}
				b.StartTimer()
				for _, tok := range tokens {
					c, _ := ws.SealChunk(tokenChunk(tok), false)
					if _, _, err := cs.OpenChunk(c); err != nil {
						b.Fatal(err)
					}
					wire += recordHeaderSize + len(c)
				}
			}
			b.ReportMetric(float64(wire)/float64(b.N*len(tokens)), "wireB/chunk")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(tokens)), "ns/chunk")
		})
	}
}
