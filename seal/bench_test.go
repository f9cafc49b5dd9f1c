package seal

import (
	"fmt"
	"testing"
)

var benchKEMs = []struct {
	name string
	id   uint16
}{{"MLKEM768X25519", KEMMLKEM768X25519}, {"X25519", KEMX25519}}

// benchCases runs f for both KEMs, k = 1 and 3, and bodies of 1 and 64 KiB.
func benchCases(b *testing.B, f func(b *testing.B, ws []testWorker, body []byte)) {
	for _, kem := range benchKEMs {
		for _, k := range []int{1, 3} {
			for _, size := range []int{1 << 10, 64 << 10} {
				b.Run(fmt.Sprintf("%s/k=%d/%dKiB", kem.name, k, size>>10), func(b *testing.B) {
					var ws []testWorker
					for i := range k {
						ws = append(ws, newTestWorker(b, kem.id, byte(i+1)))
					}
					b.SetBytes(int64(size))
					f(b, ws, make([]byte, size))
				})
			}
		}
	}
}

func BenchmarkSeal(b *testing.B) {
	benchCases(b, func(b *testing.B, ws []testWorker, body []byte) {
		to := recipients(ws...)
		h := testHeader()
		for b.Loop() {
			if _, _, err := Seal(h, body, to, testClient); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkOpen opens as the last recipient, so it also finds its key.
func BenchmarkOpen(b *testing.B) {
	benchCases(b, func(b *testing.B, ws []testWorker, body []byte) {
		raw, _ := mustSeal(b, testHeader(), body, ws...)
		w := ws[len(ws)-1]
		for b.Loop() {
			if _, _, _, err := Open(raw, w.id, w.key); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkChunk seals and opens one chunk: a token (64 bytes) or a block of
// a non-streamed answer (16 KiB).
func BenchmarkChunk(b *testing.B) {
	for _, size := range []int{64, 16 << 10} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			w := newTestWorker(b, KEMX25519, 1)
			raw, cs := mustSeal(b, testHeader(), nil, w)
			_, _, ws := mustOpen(b, raw, w)
			p := make([]byte, size)
			b.SetBytes(int64(size))
			for b.Loop() {
				c, err := ws.SealChunk(p, false)
				if err != nil {
					b.Fatal(err)
				}
				if _, _, err := cs.OpenChunk(c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
