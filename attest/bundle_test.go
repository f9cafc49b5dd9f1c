package attest_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cocoon-go/cocoon/attest"
	"github.com/cocoon-go/cocoon/price"
)

// testNow is the pinned clock of these tests.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

var (
	modelHashA = strings.Repeat("a1", 32)
	modelHashB = strings.Repeat("b2", 32)
)

// testBundle returns a fixed, valid bundle valid from an hour before testNow
// for a day.
func testBundle() *attest.Bundle {
	signing := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	var tls [32]byte
	tls[0], tls[31] = 0xee, 0xff
	return &attest.Bundle{
		HPKEKey:    append([]byte{0x00, 0x20}, bytes.Repeat([]byte{9}, 32)...),
		SigningKey: signing.Public().(ed25519.PublicKey),
		TLSKeyHash: tls,
		Models: []attest.Model{
			{Name: "qwen3-8b", Hash: modelHashB, Upstream: "Qwen/Qwen3-8B"},
			{Name: "llama-3.1-8b", Hash: modelHashA},
		},
		Created: testNow.Add(-time.Hour).Unix(),
		Expires: testNow.Add(23 * time.Hour).Unix(),
		Config: attest.RuntimeConfig{
			Engine: "http://127.0.0.1:8000/v1",
			KEM:    0x0020,
			Price:  price.Default,
		},
	}
}

func TestBundleRoundTrip(t *testing.T) {
	b := testBundle()
	raw := b.Marshal()
	got, err := attest.ParseBundle(raw)
	if err != nil {
		t.Fatalf("ParseBundle: %v", err)
	}
	// Marshal sorts models by name; everything else comes back as it was.
	want := testBundle()
	want.Models[0], want.Models[1] = want.Models[1], want.Models[0]
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
	}
	if !bytes.Equal(got.Marshal(), raw) {
		t.Error("re-marshaled bundle differs")
	}
	if got.Hash() != sha256.Sum256(raw) || got.Hash() != b.Hash() {
		t.Error("Hash is not the SHA-256 of the encoding")
	}
}

// TestBundleHashStable pins the encoding (the expected hash was computed
// independently from the documented layout): the hash is every worker's key ID,
// so changing it must be deliberate (a new bundle version).
func TestBundleHashStable(t *testing.T) {
	const want = "10bfa98517331b690bff4079cc62de8b9f8bd981aecc9a10304591f7ff81ac6b"
	h := testBundle().Hash()
	if got := hex.EncodeToString(h[:]); got != want {
		t.Errorf("bundle hash = %s, want %s", got, want)
	}
	// Model order does not change the identity.
	b := testBundle()
	b.Models[0], b.Models[1] = b.Models[1], b.Models[0]
	if b.Hash() != h {
		t.Error("hash depends on model order")
	}
	// Every field does.
	for name, mutate := range map[string]func(*attest.Bundle){
		"hpke":     func(b *attest.Bundle) { b.HPKEKey[5] ^= 1 },
		"signing":  func(b *attest.Bundle) { b.SigningKey = bytes.Repeat([]byte{1}, 32) },
		"tls":      func(b *attest.Bundle) { b.TLSKeyHash[3] ^= 1 },
		"model":    func(b *attest.Bundle) { b.Models[0].Hash = modelHashA },
		"created":  func(b *attest.Bundle) { b.Created++ },
		"expires":  func(b *attest.Bundle) { b.Expires++ },
		"engine":   func(b *attest.Bundle) { b.Config.Engine = "http://127.0.0.1:8001/v1" },
		"upstream": func(b *attest.Bundle) { b.Models[0].Upstream = "other" },
		"kem":      func(b *attest.Bundle) { b.Config.KEM++ },
		"price":    func(b *attest.Bundle) { b.Config.Price.CompletionMul++ },
	} {
		b := testBundle()
		mutate(b)
		if b.Hash() == h {
			t.Errorf("changing %s does not change the hash", name)
		}
	}
}

// The expected value was computed with sha512sum from the documented definition.
func TestReportDataStable(t *testing.T) {
	const want = "d6e7b2a091b925de00319f39949adef5ba9979231eb530e95ff57863c883b8d6223c35b9df9cce8d1dc0f963cd1517baeb2570847a6cfbd4931349e6abfa9f03"
	rd := attest.ReportData([32]byte{1, 2, 3})
	if got := hex.EncodeToString(rd[:]); got != want {
		t.Errorf("ReportData = %s, want %s", got, want)
	}
	if attest.ReportData([32]byte{1, 2, 4}) == rd {
		t.Error("ReportData ignores its input")
	}
}

func TestParseBundleRefuses(t *testing.T) {
	valid := testBundle().Marshal()
	for name, input := range map[string][]byte{
		"empty":     nil,
		"magic":     append([]byte("XXXX"), valid[4:]...),
		"version 1": append(append([]byte("CCNB"), 1), valid[5:]...),
		"version 3": append(append([]byte("CCNB"), 3), valid[5:]...),
		"truncated": valid[:len(valid)-1],
		"trailing":  append(bytes.Clone(valid), 0),
		"huge":      make([]byte, attest.MaxBundleSize+1),
		"unsorted":  unsortedBundle(),
	} {
		if _, err := attest.ParseBundle(input); !errors.Is(err, attest.ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}

// unsortedBundle encodes testBundle with its models out of order, by hand.
func unsortedBundle() []byte {
	b := testBundle()
	raw := b.Marshal()
	enc := func(m attest.Model) []byte {
		var w []byte
		for _, f := range []string{m.Name, m.Hash, m.Upstream} {
			w = append(binary.BigEndian.AppendUint32(w, uint32(len(f))), f...)
		}
		return w
	}
	sorted := append(enc(b.Models[1]), enc(b.Models[0])...) // the models come last
	head := raw[:len(raw)-len(sorted)]
	if !bytes.Equal(raw[len(head):], sorted) {
		panic("unsortedBundle: the models are not where the layout says")
	}
	return append(bytes.Clone(head), append(enc(b.Models[0]), enc(b.Models[1])...)...)
}

func TestBundleValidate(t *testing.T) {
	if err := testBundle().Validate(); err != nil {
		t.Fatalf("valid bundle: %v", err)
	}
	for name, mutate := range map[string]func(*attest.Bundle){
		"no hpke key":     func(b *attest.Bundle) { b.HPKEKey = nil },
		"huge hpke key":   func(b *attest.Bundle) { b.HPKEKey = make([]byte, 5000) },
		"short signing":   func(b *attest.Bundle) { b.SigningKey = b.SigningKey[:31] },
		"empty validity":  func(b *attest.Bundle) { b.Expires = b.Created },
		"zero created":    func(b *attest.Bundle) { b.Created = 0 },
		"duplicate model": func(b *attest.Bundle) { b.Models[1].Name = b.Models[0].Name },
		"empty name":      func(b *attest.Bundle) { b.Models[0].Name = "" },
		"control char":    func(b *attest.Bundle) { b.Models[0].Name = "a\nb" },
		"upper hash":      func(b *attest.Bundle) { b.Models[0].Hash = strings.ToUpper(modelHashA) },
		"short hash":      func(b *attest.Bundle) { b.Models[0].Hash = "abcd" },
		"too many models": func(b *attest.Bundle) { b.Models = make([]attest.Model, 65) },
	} {
		b := testBundle()
		mutate(b)
		if err := b.Validate(); !errors.Is(err, attest.ErrMalformed) {
			t.Errorf("%s: Validate = %v, want ErrMalformed", name, err)
		}
		if _, err := attest.ParseBundle(b.Marshal()); err == nil {
			t.Errorf("%s: ParseBundle accepted an invalid bundle", name)
		}
	}
	// A model whose weights hash is unknown is allowed in a bundle.
	b := testBundle()
	b.Models[0].Hash = ""
	if _, err := attest.ParseBundle(b.Marshal()); err != nil {
		t.Errorf("model without hash: %v", err)
	}
}

func TestBundleValidity(t *testing.T) {
	b := testBundle()
	if err := b.CheckValidity(testNow); err != nil {
		t.Errorf("valid bundle: %v", err)
	}
	if err := b.CheckValidity(time.Unix(b.Expires, 0)); !errors.Is(err, attest.ErrExpired) {
		t.Errorf("at expiry: %v, want ErrExpired", err)
	}
	if err := b.CheckValidity(time.Unix(b.Created, 0).Add(-attest.MaxClockSkew - time.Second)); !errors.Is(err, attest.ErrExpired) {
		t.Errorf("before creation: %v, want ErrExpired", err)
	}
}

// TestReportDataWithGPU: without GPU evidence the report binds the bundle
// alone; with it, the bundle and those exact bytes.
func TestReportDataWithGPU(t *testing.T) {
	h := testBundle().Hash()
	if attest.ReportDataWithGPU(h, nil) != attest.ReportData(h) {
		t.Error("without GPU evidence, ReportDataWithGPU differs from ReportData")
	}
	a, b := attest.ReportDataWithGPU(h, []byte("gpu a")), attest.ReportDataWithGPU(h, []byte("gpu b"))
	if a == attest.ReportData(h) || a == b {
		t.Error("GPU evidence does not change report_data")
	}
	if a != attest.ReportDataWithGPU(h, []byte("gpu a")) {
		t.Error("ReportDataWithGPU is not stable")
	}
}

// TestConfigDigestStable pins the runtime configuration digest (computed
// independently from the documented layout) and shows what enters it: what
// decides where plaintext goes and what is charged, not keys or validity.
func TestConfigDigestStable(t *testing.T) {
	const want = "53d426fd9b5ba9c295afe009d6ba8f84c650e5fc0393dc7a87a210b4f8aefcfd"
	d := testBundle().ConfigDigest()
	if got := hex.EncodeToString(d[:]); got != want {
		t.Errorf("config digest = %s, want %s", got, want)
	}
	for name, mutate := range map[string]func(*attest.Bundle){
		"signing": func(b *attest.Bundle) { b.SigningKey = bytes.Repeat([]byte{1}, 32) },
		"created": func(b *attest.Bundle) { b.Created++ },
		"order":   func(b *attest.Bundle) { b.Models[0], b.Models[1] = b.Models[1], b.Models[0] },
	} {
		b := testBundle()
		mutate(b)
		if b.ConfigDigest() != d {
			t.Errorf("changing %s changes the config digest", name)
		}
	}
	for name, mutate := range map[string]func(*attest.Bundle){
		"engine":   func(b *attest.Bundle) { b.Config.Engine = "http://127.0.0.1:8001/v1" },
		"weights":  func(b *attest.Bundle) { b.Models[0].Hash = modelHashA },
		"upstream": func(b *attest.Bundle) { b.Models[1].Upstream = "llama" },
		"kem":      func(b *attest.Bundle) { b.Config.KEM++ },
		"price":    func(b *attest.Bundle) { b.Config.Price.PerToken++ },
	} {
		b := testBundle()
		mutate(b)
		if b.ConfigDigest() == d {
			t.Errorf("changing %s does not change the config digest", name)
		}
	}
}

func TestBundleValidateConfig(t *testing.T) {
	for name, mutate := range map[string]func(*attest.Bundle){
		"no engine":         func(b *attest.Bundle) { b.Config.Engine = "" },
		"relative socket":   func(b *attest.Bundle) { b.Config.Engine = "unix:engine.sock" },
		"ftp":               func(b *attest.Bundle) { b.Config.Engine = "ftp://127.0.0.1/" },
		"credentials":       func(b *attest.Bundle) { b.Config.Engine = "http://user:secret@127.0.0.1:8000/v1" },
		"control char":      func(b *attest.Bundle) { b.Config.Engine = "http://127.0.0.1:8000/\n" },
		"kem not the key's": func(b *attest.Bundle) { b.Config.KEM = 0x647a },
		"upstream newline":  func(b *attest.Bundle) { b.Models[0].Upstream = "a\nb" },
	} {
		b := testBundle()
		mutate(b)
		if err := b.Validate(); !errors.Is(err, attest.ErrMalformed) {
			t.Errorf("%s: Validate = %v, want ErrMalformed", name, err)
		}
	}
	for _, e := range []string{attest.EngineEmbedded, "unix:/run/vllm.sock", "https://engine.example:443/v1"} {
		b := testBundle()
		b.Config.Engine = e
		if err := b.Validate(); err != nil {
			t.Errorf("engine %q: %v", e, err)
		}
	}
}

func TestLocalEngine(t *testing.T) {
	for e, want := range map[string]bool{
		attest.EngineEmbedded:          true,
		"unix:/run/vllm.sock":          true,
		"http://127.0.0.1:8000/v1":     true,
		"http://127.8.9.10/v1":         true,
		"http://[::1]:8000/v1":         true,
		"http://[::ffff:127.0.0.1]/v1": true,
		"http://localhost:8000/v1":     false, // resolved by whoever controls the resolver
		"http://10.0.0.5:8000/v1":      false,
		"https://api.example.com/v1":   false,
		"http://0.0.0.0:8000/v1":       false,
		"unix:relative":                false,
		"":                             false,
	} {
		if got := attest.LocalEngine(e); got != want {
			t.Errorf("LocalEngine(%q) = %v, want %v", e, got, want)
		}
	}
}
