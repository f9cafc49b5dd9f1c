package attest_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cocoon-go/cocoon/attest"
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
			{Name: "qwen3-8b", Hash: modelHashB},
			{Name: "llama-3.1-8b", Hash: modelHashA},
		},
		Created: testNow.Add(-time.Hour).Unix(),
		Expires: testNow.Add(23 * time.Hour).Unix(),
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
	const want = "79bc4f4ef70ebbf2489d6c396ca086b5d5b78e863b052f9a9c8b8f010f333bd2"
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
		"hpke":    func(b *attest.Bundle) { b.HPKEKey[5] ^= 1 },
		"signing": func(b *attest.Bundle) { b.SigningKey = bytes.Repeat([]byte{1}, 32) },
		"tls":     func(b *attest.Bundle) { b.TLSKeyHash[3] ^= 1 },
		"model":   func(b *attest.Bundle) { b.Models[0].Hash = modelHashA },
		"created": func(b *attest.Bundle) { b.Created++ },
		"expires": func(b *attest.Bundle) { b.Expires++ },
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
		"version":   append(append([]byte("CCNB"), 2), valid[5:]...),
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
		one := testBundle()
		one.Models = []attest.Model{m}
		r := one.Marshal()
		return r[len(r)-(8+len(m.Name)+len(m.Hash)):]
	}
	sorted := append(enc(b.Models[1]), enc(b.Models[0])...)
	head := raw[:len(raw)-len(sorted)]
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
