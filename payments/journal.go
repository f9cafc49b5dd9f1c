package payments

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
)

// A journal keeps one end's vouchers between two checkpoints of its state file: each flush appends
// one fixed-size record of the newest voucher (vouchers are cumulative, so the newest is all there is
// to keep), and the end's state is the checkpoint with the newest record over it. A record is
//
//	seqno (8 bytes, big-endian) | total (8) | signature (64; zero for a payer) | CRC-32C (4)
//
// where the checksum also covers the role and the channel, so that a record is only ever read back
// by the end that wrote it. A flush writes its record with one write and fsyncs it; a crash during
// the write can only leave the last record short or damaged — a torn tail, which was never reported
// durable and is dropped — so a damaged record anywhere else is ErrCorrupt.
const (
	recordSize = 8 + 8 + 64 + 4
	// maxRecords is how long a journal grows before a flush folds it into the checkpoint.
	maxRecords = 4096
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// record is one voucher in a journal.
type record struct {
	Seqno, Total uint64
	Signature    [64]byte
}

// recordOf is the journal record of st's voucher.
func recordOf(st *state) record {
	r := record{Seqno: st.Seqno, Total: st.Total}
	copy(r.Signature[:], st.Signature)
	return r
}

// journalSeed is the checksum of what binds a journal's records to role's end of the channel.
func journalSeed(role, channel string) uint32 {
	return crc32.Checksum([]byte(role+" "+channel+"\n"), castagnoli)
}

// appendRecord appends r, checksummed from seed, to b.
func appendRecord(b []byte, seed uint32, r record) []byte {
	b = binary.BigEndian.AppendUint64(b, r.Seqno)
	b = binary.BigEndian.AppendUint64(b, r.Total)
	b = append(b, r.Signature[:]...)
	return binary.BigEndian.AppendUint32(b, crc32.Update(seed, castagnoli, b[len(b)-(recordSize-4):]))
}

// parseRecord reads the record b (recordSize bytes); false if its checksum does not match.
func parseRecord(b []byte, seed uint32) (record, bool) {
	var r record
	body := b[:recordSize-4]
	if crc32.Update(seed, castagnoli, body) != binary.BigEndian.Uint32(b[recordSize-4:]) {
		return r, false
	}
	r.Seqno = binary.BigEndian.Uint64(body)
	r.Total = binary.BigEndian.Uint64(body[8:])
	copy(r.Signature[:], body[16:])
	return r, true
}

// parseJournal returns the newest record of the journal b, checked to be in order (seqnos go up,
// totals never down), and how many records it holds; ok is false for an empty journal. A torn tail
// is dropped; any other damage is an error.
func parseJournal(b []byte, seed uint32) (newest record, n int, ok bool, err error) {
	full := len(b) / recordSize
	for i := range full {
		r, good := parseRecord(b[i*recordSize:(i+1)*recordSize], seed)
		if !good {
			if i == full-1 && len(b)%recordSize == 0 {
				break // the last write, torn
			}
			return record{}, 0, false, fmt.Errorf("journal record %d of %d is damaged", i+1, full)
		}
		if ok && (r.Seqno <= newest.Seqno || r.Total < newest.Total) {
			return record{}, 0, false, fmt.Errorf("journal record %d (seqno %d, total %d) follows seqno %d, total %d",
				i+1, r.Seqno, r.Total, newest.Seqno, newest.Total)
		}
		newest, n, ok = r, n+1, true
	}
	return newest, n, ok, nil
}

// readJournal reads the journal at path; one that does not exist is empty.
func readJournal(path string, seed uint32) (newest record, n int, ok bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return record{}, 0, false, nil
	}
	if err != nil {
		return record{}, 0, false, err
	}
	return parseJournal(b, seed)
}
