package seal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// RecordType says what a record on a response stream carries.
type RecordType byte

// The records of a response stream: sealed chunks, then a receipt; or, at
// any point, an error. Receipts and errors are clear text: the receipt
// carries its own signature, and an error record is not authenticated at
// all, since the proxy writes them too. A client treats one as the end of a
// failed stream, never as part of the answer. A worker's error about a
// request it opened carries its text only sealed (WorkerSession.SealError),
// next to a clear code.
const (
	RecordChunk   RecordType = 1 // a sealed chunk (WorkerSession.SealChunk)
	RecordReceipt RecordType = 2 // a signed receipt (Receipt.Marshal)
	RecordError   RecordType = 3 // an error, JSON, written by worker or proxy
)

// recordHeaderSize is the type byte and the u32 payload length.
const recordHeaderSize = 1 + 4

// String returns the name of t.
func (t RecordType) String() string {
	switch t {
	case RecordChunk:
		return "chunk"
	case RecordReceipt:
		return "receipt"
	case RecordError:
		return "error"
	}
	return fmt.Sprintf("RecordType(%d)", byte(t))
}

func (t RecordType) valid() bool { return t >= RecordChunk && t <= RecordError }

// WriteRecord writes one record, type ‖ u32 length ‖ payload, in a single
// Write, so that a writer that flushes per write sends whole records.
func WriteRecord(w io.Writer, t RecordType, payload []byte) error {
	if !t.valid() {
		return fmt.Errorf("seal: write record: %w: type %v", ErrMalformed, t)
	}
	if len(payload) > MaxRecord {
		return fmt.Errorf("seal: write %v record of %d bytes: %w, limit %d", t, len(payload), ErrTooLarge, MaxRecord)
	}
	b := make([]byte, recordHeaderSize, recordHeaderSize+len(payload))
	b[0] = byte(t)
	binary.BigEndian.PutUint32(b[1:], uint32(len(payload)))
	if _, err := w.Write(append(b, payload...)); err != nil {
		return fmt.Errorf("seal: write %v record: %w", t, err)
	}
	return nil
}

// RecordReader reads the records of a response stream.
type RecordReader struct {
	r   io.Reader
	hdr [recordHeaderSize]byte
}

// NewRecordReader returns a reader of the records in r. It reads no more of r
// than the records it returns; wrap r in a bufio.Reader if small reads are dear.
func NewRecordReader(r io.Reader) *RecordReader { return &RecordReader{r: r} }

// Next returns the next record. The payload is freshly allocated. It returns
// io.EOF only when the stream ends at a record boundary, and
// io.ErrUnexpectedEOF when it ends inside one; a payload over MaxRecord or an
// unknown type is an error before the payload is read.
func (r *RecordReader) Next() (RecordType, []byte, error) {
	if _, err := io.ReadFull(r.r, r.hdr[:]); err != nil {
		if err == io.EOF {
			return 0, nil, io.EOF
		}
		return 0, nil, fmt.Errorf("seal: read record header: %w", err)
	}
	t, n := RecordType(r.hdr[0]), binary.BigEndian.Uint32(r.hdr[1:])
	if !t.valid() {
		return 0, nil, fmt.Errorf("seal: read record: %w: type %v", ErrMalformed, t)
	}
	if n > MaxRecord {
		return 0, nil, fmt.Errorf("seal: read %v record of %d bytes: %w, limit %d", t, n, ErrTooLarge, MaxRecord)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r.r, payload); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, fmt.Errorf("seal: read %v record of %d bytes: %w", t, n, err)
	}
	return t, payload, nil
}
