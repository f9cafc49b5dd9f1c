package contracts

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"testing"
)

func TestVoucherCellLayout(t *testing.T) {
	v := Voucher{Seqno: 0x0102030405060708, Total: 1_500_000_000}
	for i := range v.ChannelID {
		v.ChannelID[i] = byte(i)
	}
	s := v.Cell().MustBeginParse()
	if tag := s.MustLoadUInt(32); tag != uint64(VoucherTag) {
		t.Fatalf("tag %#x", tag)
	}
	if id := s.MustLoadSlice(256); !bytes.Equal(id, v.ChannelID[:]) {
		t.Fatalf("channel id %x", id)
	}
	if seqno := s.MustLoadUInt(64); seqno != v.Seqno {
		t.Fatalf("seqno %d", seqno)
	}
	if total := s.MustLoadCoins(); total != v.Total {
		t.Fatalf("total %d", total)
	}
	if s.BitsLeft() != 0 || s.RefsNum() != 0 {
		t.Fatalf("%d bits and %d refs left", s.BitsLeft(), s.RefsNum())
	}
}

func TestSignedVoucherRoundTrip(t *testing.T) {
	payer, other := newParty("payer"), newParty("other")
	sv := Voucher{ChannelID: hashOf("channel"), Seqno: 42, Total: 123_456_789}.Sign(payer.key)
	if !sv.Verify(payer.pub()) {
		t.Fatal("voucher does not verify with the payer's key")
	}
	if sv.Verify(other.pub()) || sv.Verify(nil) {
		t.Fatal("voucher verifies with another key")
	}
	b := sv.Bytes()
	if len(b) != SignedVoucherSize {
		t.Fatalf("%d bytes", len(b))
	}
	back, err := ParseSignedVoucher(b)
	if err != nil || back != sv {
		t.Fatalf("ParseSignedVoucher = %+v, %v", back, err)
	}
	js, err := json.Marshal(map[string]SignedVoucher{"voucher": sv})
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]SignedVoucher
	if err := json.Unmarshal(js, &out); err != nil || out["voucher"] != sv {
		t.Fatalf("JSON round trip: %+v, %v", out, err)
	}
	for _, bad := range [][]byte{nil, b[:len(b)-1], append(b, 0)} {
		if _, err := ParseSignedVoucher(bad); !errors.Is(err, ErrBadVoucher) {
			t.Errorf("ParseSignedVoucher(%d bytes) = %v", len(bad), err)
		}
	}
	var x SignedVoucher
	if err := x.UnmarshalText([]byte("not base64!")); !errors.Is(err, ErrBadVoucher) {
		t.Errorf("UnmarshalText of junk = %v", err)
	}
}

func FuzzParseSignedVoucher(f *testing.F) {
	payer := newParty("payer")
	f.Add(Voucher{ChannelID: hashOf("channel"), Seqno: 1, Total: 1}.Sign(payer.key).Bytes())
	f.Add(make([]byte, SignedVoucherSize))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		sv, err := ParseSignedVoucher(b)
		if err != nil {
			if len(b) == SignedVoucherSize {
				t.Fatalf("refused %d bytes: %v", len(b), err)
			}
			return
		}
		if !bytes.Equal(sv.Bytes(), b) {
			t.Fatal("Bytes does not give back what was parsed")
		}
		// Whatever arrives must make a cell the contract can read, and verifying must
		// not panic whatever the signature.
		s := sv.Cell().MustBeginParse()
		if s.MustLoadUInt(32) != uint64(VoucherTag) || !bytes.Equal(s.MustLoadSlice(256), sv.ChannelID[:]) ||
			s.MustLoadUInt(64) != sv.Seqno || s.MustLoadCoins() != sv.Total {
			t.Fatal("cell does not carry the voucher")
		}
		_ = sv.Verify(payer.pub())
		text, _ := sv.MarshalText()
		var back SignedVoucher
		if err := back.UnmarshalText(text); err != nil || back != sv {
			t.Fatalf("text round trip: %v", err)
		}
	})
}

// TestVoucherSignedInGoAcceptedOnChain is the agreement test: a voucher built and signed
// by this package is what the compiled contract accepts, and its signature is over the
// same hash.
func TestVoucherSignedInGoAcceptedOnChain(t *testing.T) {
	f := newChannel(t, ton)
	sv := f.voucher(1, ton/3)
	if !ed25519.Verify(f.payer.pub(), sv.Cell().Hash(), sv.Signature[:]) {
		t.Fatal("signature is not over the cell hash")
	}
	mustExit(t, "claim", f.claim(sv), 0)
}
