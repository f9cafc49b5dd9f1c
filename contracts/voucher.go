package contracts

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/xssnick/tonutils-go/tvm/cell"
)

// VoucherTag is the 32-bit prefix of a voucher cell. It keeps a voucher signature from
// being mistaken for a signature over any other kind of cell.
const VoucherTag uint32 = 0x636f7600

// Voucher is the payer's promise that the payee may take Total nanoTON, in all, out of the
// channel ChannelID. Vouchers are cumulative: each new one carries a higher Seqno and a
// Total no lower than the last, and the channel pays the difference to what it has paid.
type Voucher struct {
	// ChannelID is the 256-bit account id of the channel's address (ChannelConfig.ID).
	ChannelID [32]byte
	Seqno     uint64
	Total     uint64 // nanoTON
}

// Cell is the voucher as the contract reads it:
// voucher#636f7600 channel_id:uint256 seqno:uint64 total:Coins.
// The payer signs the representation hash of this cell.
func (v Voucher) Cell() *cell.Cell {
	return cell.BeginCell().
		MustStoreUInt(uint64(VoucherTag), 32).
		MustStoreSlice(v.ChannelID[:], 256).
		MustStoreUInt(v.Seqno, 64).
		MustStoreCoins(v.Total).
		EndCell()
}

// Sign signs v with the payer's key.
func (v Voucher) Sign(key ed25519.PrivateKey) SignedVoucher {
	sv := SignedVoucher{Voucher: v}
	copy(sv.Signature[:], ed25519.Sign(key, v.Cell().Hash()))
	return sv
}

// SignedVoucher is a voucher with the payer's Ed25519 signature over the hash of its cell.
type SignedVoucher struct {
	Voucher
	Signature [ed25519.SignatureSize]byte
}

// Verify reports whether the signature is the payer's, as the contract checks it.
func (sv SignedVoucher) Verify(payerKey ed25519.PublicKey) bool {
	return len(payerKey) == ed25519.PublicKeySize && ed25519.Verify(payerKey, sv.Cell().Hash(), sv.Signature[:])
}

// SignedVoucherSize is the length of a signed voucher's binary form.
const SignedVoucherSize = 32 + 8 + 8 + ed25519.SignatureSize

// ErrBadVoucher reports bytes that are not a signed voucher.
var ErrBadVoucher = errors.New("contracts: malformed signed voucher")

// Bytes is the binary form sent between client, proxy and worker: channel id (32 bytes),
// seqno and total (8 bytes each, big-endian) and the signature (64 bytes).
func (sv SignedVoucher) Bytes() []byte {
	b := make([]byte, 0, SignedVoucherSize)
	b = append(b, sv.ChannelID[:]...)
	b = binary.BigEndian.AppendUint64(b, sv.Seqno)
	b = binary.BigEndian.AppendUint64(b, sv.Total)
	return append(b, sv.Signature[:]...)
}

// ParseSignedVoucher decodes the binary form made by Bytes. It does not check the
// signature: call Verify with the payer's key.
func ParseSignedVoucher(b []byte) (SignedVoucher, error) {
	var sv SignedVoucher
	if len(b) != SignedVoucherSize {
		return sv, fmt.Errorf("%w: %d bytes, want %d", ErrBadVoucher, len(b), SignedVoucherSize)
	}
	copy(sv.ChannelID[:], b[:32])
	sv.Seqno = binary.BigEndian.Uint64(b[32:40])
	sv.Total = binary.BigEndian.Uint64(b[40:48])
	copy(sv.Signature[:], b[48:])
	return sv, nil
}

// MarshalText encodes the voucher as standard base64 of Bytes, so it can travel in JSON
// and HTTP headers.
func (sv SignedVoucher) MarshalText() ([]byte, error) {
	return base64.StdEncoding.AppendEncode(nil, sv.Bytes()), nil
}

// UnmarshalText decodes the form made by MarshalText.
func (sv *SignedVoucher) UnmarshalText(text []byte) error {
	b, err := base64.StdEncoding.AppendDecode(nil, text)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadVoucher, err)
	}
	v, err := ParseSignedVoucher(b)
	if err != nil {
		return err
	}
	*sv = v
	return nil
}
