package seal

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

func TestRecordRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	records := []struct {
		t RecordType
		p []byte
	}{
		{RecordChunk, []byte("sealed")},
		{RecordChunk, nil},
		{RecordReceipt, []byte("receipt")},
		{RecordError, []byte(`{"error":"worker gone"}`)},
		{RecordChunk, make([]byte, MaxRecord)},
	}
	for _, r := range records {
		if err := WriteRecord(&buf, r.t, r.p); err != nil {
			t.Fatal(err)
		}
	}
	// One byte at a time, to show Next copes with short reads.
	rr := NewRecordReader(iotest.OneByteReader(&buf))
	for i, want := range records {
		typ, p, err := rr.Next()
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if typ != want.t || !bytes.Equal(p, want.p) {
			t.Fatalf("record %d: %v %d bytes, want %v %d bytes", i, typ, len(p), want.t, len(want.p))
		}
	}
	if _, _, err := rr.Next(); err != io.EOF {
		t.Fatalf("at the end: %v, want io.EOF itself", err)
	}
}

func TestRecordReaderErrors(t *testing.T) {
	var one bytes.Buffer
	WriteRecord(&one, RecordReceipt, []byte("payload"))
	whole := one.Bytes()
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"part of a header", whole[:3], io.ErrUnexpectedEOF},
		{"header only", whole[:recordHeaderSize], io.ErrUnexpectedEOF},
		{"part of a payload", whole[:len(whole)-1], io.ErrUnexpectedEOF},
		{"type 0", []byte{0, 0, 0, 0, 0}, ErrMalformed},
		{"type 4", []byte{4, 0, 0, 0, 0}, ErrMalformed},
		// Refused from the header alone: no payload follows.
		{"over MaxRecord", []byte{1, 0, 0x10, 0, 1}, ErrTooLarge},
		{"4 GiB", []byte{1, 0xff, 0xff, 0xff, 0xff}, ErrTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := NewRecordReader(bytes.NewReader(c.in)).Next()
			wantErr(t, err, c.want)
			if errors.Is(err, io.EOF) {
				t.Fatalf("err %v is io.EOF inside a record", err)
			}
		})
	}
	t.Run("reader error", func(t *testing.T) {
		boom := errors.New("boom")
		_, _, err := NewRecordReader(iotest.ErrReader(boom)).Next()
		wantErr(t, err, boom)
	})
	t.Run("after a good record", func(t *testing.T) {
		rr := NewRecordReader(bytes.NewReader(append(bytes.Clone(whole), whole[:2]...)))
		if _, _, err := rr.Next(); err != nil {
			t.Fatal(err)
		}
		_, _, err := rr.Next()
		wantErr(t, err, io.ErrUnexpectedEOF)
	})
}

// countWriter counts Write calls.
type countWriter struct {
	bytes.Buffer
	writes int
}

func (w *countWriter) Write(p []byte) (int, error) { w.writes++; return w.Buffer.Write(p) }

func TestWriteRecord(t *testing.T) {
	var w countWriter
	if err := WriteRecord(&w, RecordChunk, []byte("abc")); err != nil {
		t.Fatal(err)
	}
	if w.writes != 1 || !bytes.Equal(w.Bytes(), []byte{1, 0, 0, 0, 3, 'a', 'b', 'c'}) {
		t.Fatalf("%d writes of %x", w.writes, w.Bytes())
	}
	wantErr(t, WriteRecord(&w, RecordChunk, make([]byte, MaxRecord+1)), ErrTooLarge)
	wantErr(t, WriteRecord(&w, 0, nil), ErrMalformed)
	wantErr(t, WriteRecord(&w, 4, nil), ErrMalformed)
	boom := errors.New("boom")
	wantErr(t, WriteRecord(errWriter{boom}, RecordError, nil), boom)
	if RecordReceipt.String() != "receipt" || RecordType(9).String() != "RecordType(9)" {
		t.Fatal("RecordType.String")
	}
}

type errWriter struct{ err error }

func (w errWriter) Write([]byte) (int, error) { return 0, w.err }
