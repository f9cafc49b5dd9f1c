package tdx

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-tdx-guest/pcs"

	"github.com/cocoon-go/cocoon/attest"
)

func realSnapshot(t testing.TB) []byte {
	t.Helper()
	raw, err := readQuote()
	if err != nil {
		t.Fatal(err)
	}
	snap, err := Snapshot(raw, Dir(collateralDir))
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	return snap
}

func TestSnapshotRoundTrip(t *testing.T) {
	snap := realSnapshot(t)
	entries, err := ParseSnapshot(snap)
	if err != nil {
		t.Fatal(err)
	}
	var urls []string
	for _, e := range entries {
		urls = append(urls, e.URL)
		if (issuerChainHeader(e.URL) != "") != (e.IssuerChain != "") {
			t.Errorf("%s: issuer chain of %d bytes", e.URL, len(e.IssuerChain))
		}
	}
	want := []string{pcs.PckCrlURL("platform"), pcs.QeIdentityURL(), pcs.TcbInfoURL("90c06f000000"), RootCACRLURL} // sorted
	if len(urls) != len(want) {
		t.Fatalf("snapshot holds %q, want %q", urls, want)
	}
	for i := range want {
		if urls[i] != want[i] {
			t.Errorf("entry %d: %q, want %q", i, urls[i], want[i])
		}
	}
	again, err := MarshalSnapshot(entries)
	if err != nil || !bytes.Equal(again, snap) {
		t.Fatalf("re-encoding differs (%v)", err)
	}
	t.Logf("snapshot of %d bytes", len(snap))
}

// TestSnapshotVerifies: the real quote with a snapshot of its collateral,
// and no getter, verifies at the collateral's date and not today; a flipped
// byte in a body Intel signed is refused.
func TestSnapshotVerifies(t *testing.T) {
	snap := realSnapshot(t)
	ev := &attest.Evidence{Kind: attest.KindTDX, CPU: realQuote(t), Collateral: snap}
	v := NewVerifier(nil)
	c, err := v.VerifyEvidence(ev, pinned)
	if err != nil {
		t.Fatalf("VerifyEvidence at %v: %v", pinned, err)
	}
	if want := verifiedClaims(t); c.TCB != "UpToDate" || c.Measurement != want.Measurement || !c.ValidUntil.Equal(want.ValidUntil) {
		t.Errorf("claims %+v, want %+v", c, want)
	}
	if _, err := v.VerifyEvidence(ev, time.Now()); !errors.Is(err, ErrCollateral) {
		t.Fatalf("VerifyEvidence today: err = %v, want ErrCollateral", err)
	}
	if _, err := v.Verify(ev.CPU, pinned); !errors.Is(err, ErrCollateral) {
		t.Fatalf("Verify without collateral or getter: err = %v, want ErrCollateral", err)
	}

	for _, signed := range []struct{ object, field string }{
		{`"tcbInfo"`, `"UpToDate"`},
		{`"enclaveIdentity"`, `"UpToDate"`},
		{`"tcbInfo"`, `"nextUpdate":"2026-02-11`},
	} {
		bad := bytes.Clone(snap)
		at := bytes.Index(bad, []byte(signed.object))
		off := bytes.Index(bad[at:], []byte(signed.field))
		if at < 0 || off < 0 {
			t.Fatalf("%s %s not in the snapshot", signed.object, signed.field)
		}
		bad[at+off+len(signed.field)-1] ^= 1
		if _, err := ParseSnapshot(bad); err != nil {
			t.Fatalf("tampered snapshot no longer parses: %v", err)
		}
		_, err := v.VerifyEvidence(&attest.Evidence{Kind: attest.KindTDX, CPU: ev.CPU, Collateral: bad}, pinned)
		if !errors.Is(err, ErrCollateral) {
			t.Errorf("%s %s flipped: err = %v, want ErrCollateral", signed.object, signed.field, err)
		}
		// A verifier with a getter of its own falls back to it.
		if _, err := NewVerifier(Dir(collateralDir)).VerifyEvidence(&attest.Evidence{Kind: attest.KindTDX, CPU: ev.CPU, Collateral: bad}, pinned); err != nil {
			t.Errorf("%s %s flipped, verifier with a getter: %v", signed.object, signed.field, err)
		}
	}

	garbage := &attest.Evidence{Kind: attest.KindTDX, CPU: ev.CPU, Collateral: []byte("junk")}
	if _, err := v.VerifyEvidence(garbage, pinned); !errors.Is(err, attest.ErrMalformed) {
		t.Errorf("junk collateral: err = %v, want ErrMalformed", err)
	}
}

// TestSnapshotFallback: a verifier without a getter verifies with the
// snapshot alone and fetches nothing; one with a getter of its own ignores
// the snapshot and uses its own collateral; a snapshot getter passes on to
// its fallback only Intel's collateral URLs.
func TestSnapshotFallback(t *testing.T) {
	entries, err := ParseSnapshot(realSnapshot(t))
	if err != nil {
		t.Fatal(err)
	}
	partial, err := MarshalSnapshot(entries[:len(entries)-1]) // without the root CA CRL
	if err != nil {
		t.Fatal(err)
	}
	ev := &attest.Evidence{Kind: attest.KindTDX, CPU: realQuote(t), Collateral: partial}
	if _, err := NewVerifier(nil).VerifyEvidence(ev, pinned); !errors.Is(err, ErrCollateral) || !strings.Contains(err.Error(), ErrNotInSnapshot.Error()) {
		t.Fatalf("partial snapshot, no getter: err = %v, want ErrCollateral saying it is not in the snapshot", err)
	}
	own := &recorder{getter: Dir(collateralDir)}
	if _, err := NewVerifier(own).VerifyEvidence(ev, pinned); err != nil {
		t.Fatalf("partial snapshot with a getter: %v", err)
	}
	if got := own.entries(); len(got) != 4 {
		t.Fatalf("own getter asked for %d URLs, want all 4: the snapshot is ignored", len(got))
	}
	fallback := &recorder{getter: Dir(collateralDir)}
	g := NewSnapshotGetter(entries, fallback)
	for _, url := range []string{"https://example.com/", "http://169.254.169.254/latest/meta-data", "file:///etc/passwd"} {
		if _, _, err := g.Get(url); !errors.Is(err, ErrNotInSnapshot) {
			t.Errorf("Get(%q): err = %v, want ErrNotInSnapshot", url, err)
		}
	}
	if got := fallback.entries(); len(got) != 0 {
		t.Errorf("the fallback was asked for %d URLs that are not Intel's", len(got))
	}
}

func TestSnapshotIncomplete(t *testing.T) {
	if _, err := Snapshot(realQuote(t), Dir(t.TempDir())); !errors.Is(err, ErrCollateral) || !errors.Is(err, ErrNotInDir) {
		t.Fatalf("err = %v, want ErrCollateral wrapping ErrNotInDir", err)
	}
	if _, err := Snapshot([]byte("junk"), Dir(collateralDir)); !errors.Is(err, attest.ErrMalformed) {
		t.Fatalf("err = %v, want ErrMalformed", err)
	}
}

func TestParseSnapshotRefuses(t *testing.T) {
	snap := realSnapshot(t)
	entries, err := ParseSnapshot(snap)
	if err != nil {
		t.Fatal(err)
	}
	e := func(url string) SnapshotEntry { return SnapshotEntry{URL: url, Body: []byte{1}} }
	unsorted := encodeRaw(e("b"), e("a"))
	dup := encodeRaw(e("a"), e("a"))
	for name, p := range map[string][]byte{
		"empty":      nil,
		"no entries": encodeRaw(),
		"unsorted":   unsorted,
		"duplicate":  dup,
		"empty body": encodeRaw(SnapshotEntry{URL: "a"}),
		"trailing":   append(bytes.Clone(snap), 0),
		"truncated":  snap[:len(snap)-1],
		"version":    append([]byte("CCTS\x02"), snap[5:]...),
		"magic":      append([]byte("CCTX\x01"), snap[5:]...),
		"oversized":  make([]byte, MaxSnapshotSize+1),
	} {
		if _, err := ParseSnapshot(p); !errors.Is(err, attest.ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
	if sorted, err := MarshalSnapshot([]SnapshotEntry{e("b"), e("a")}); err != nil || !bytes.Equal(sorted, encodeRaw(e("a"), e("b"))) {
		t.Errorf("MarshalSnapshot does not sort: %v", err)
	}
	if _, err := MarshalSnapshot(append(entries, entries[0])); !errors.Is(err, attest.ErrMalformed) {
		t.Errorf("MarshalSnapshot with a duplicate: err = %v", err)
	}
	big := SnapshotEntry{URL: "a", Body: make([]byte, MaxSnapshotSize)}
	if _, err := MarshalSnapshot([]SnapshotEntry{big}); !errors.Is(err, attest.ErrMalformed) {
		t.Errorf("MarshalSnapshot over the size limit: err = %v", err)
	}
}

// encodeRaw encodes entries in the given order, without MarshalSnapshot's checks.
func encodeRaw(entries ...SnapshotEntry) []byte {
	b := append([]byte(snapshotMagic), snapshotVersion, 0, byte(len(entries)))
	for _, e := range entries {
		for _, f := range [][]byte{[]byte(e.URL), []byte(e.IssuerChain), e.Body} {
			b = append(b, byte(len(f)>>24), byte(len(f)>>16), byte(len(f)>>8), byte(len(f)))
			b = append(b, f...)
		}
	}
	return b
}

func FuzzParseSnapshot(f *testing.F) {
	f.Add(realSnapshot(f))
	f.Add(encodeRaw(SnapshotEntry{URL: "a", IssuerChain: "c", Body: []byte{1}}))
	f.Add([]byte("CCTS\x01\x00\x01"))
	f.Fuzz(func(t *testing.T, p []byte) {
		entries, err := ParseSnapshot(p)
		if err != nil {
			return
		}
		again, err := MarshalSnapshot(entries)
		if err != nil {
			t.Fatalf("parsed snapshot does not re-encode: %v", err)
		}
		if !bytes.Equal(again, p) {
			t.Fatalf("parsed snapshot is not canonical")
		}
		NewSnapshotGetter(entries, nil).Get(entries[0].URL)
	})
}

// TestDirSave checks that a snapshot saved as a directory is the collateral
// it came from: the real quote verifies against it at the pinned date, and
// the files are those of the source directory.
func TestDirSave(t *testing.T) {
	entries, err := ParseSnapshot(realSnapshot(t))
	if err != nil {
		t.Fatal(err)
	}
	out := Dir(filepath.Join(t.TempDir(), "collateral"))
	if err := out.Save(entries); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("testdata/tdx-2026-01/quote.bin")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewVerifier(out).Verify(raw, pinned); err != nil {
		t.Fatalf("verifying against the saved directory: %v", err)
	}
	files, err := os.ReadDir(string(out))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		got, _ := os.ReadFile(filepath.Join(string(out), f.Name()))
		want, err := os.ReadFile(filepath.Join(collateralDir, f.Name()))
		if err != nil || !bytes.Equal(bytes.TrimSpace(got), bytes.TrimSpace(want)) {
			t.Errorf("%s differs from the source directory's (%v)", f.Name(), err)
		}
	}
	// TCB info, QE identity and the quote's PCK CRL, each with its issuer
	// chain, and the root CA CRL.
	if len(files) != 7 {
		t.Errorf("saved %d files, want 7", len(files))
	}
	if err := out.Save([]SnapshotEntry{{URL: "https://example.com/other", Body: []byte("x")}}); !errors.Is(err, ErrNotInDir) {
		t.Errorf("saving an unknown URL: %v, want ErrNotInDir", err)
	}
}
