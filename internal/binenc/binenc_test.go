package binenc

import (
	"bytes"
	"errors"
	"testing"
)

// record is the schema the tests and the fuzzer decode: one field of each kind.
type record struct {
	A    uint8
	B    uint16
	C    uint32
	D    uint64
	Flag bool
	ID   [4]byte
	Name []byte // 0 to 8 bytes, copied
	Body []byte // 1 to 16 bytes, aliased
}

const (
	testTag     = "TEST"
	testVersion = 1
)

func (r *record) append(b []byte) []byte {
	b = AppendMagic(b, testTag, testVersion)
	b = append(b, r.A)
	b = AppendU16(b, r.B)
	b = AppendU32(b, r.C)
	b = AppendU64(b, r.D)
	b = AppendBool(b, r.Flag)
	b = append(b, r.ID[:]...)
	b = AppendBytes(b, r.Name)
	return AppendBytes(b, r.Body)
}

func parseRecord(p []byte) (*record, error) {
	d := NewDecoder(p)
	d.Magic(testTag, testVersion)
	r := &record{A: d.U8("a"), B: d.U16("b"), C: d.U32("c"), D: d.U64("d"), Flag: d.Bool("flag")}
	d.Fixed("id", r.ID[:])
	r.Name = d.Bytes("name", 0, 8)
	r.Body = d.BytesNoCopy("body", 1, 16)
	if err := d.Finish(); err != nil {
		return nil, err
	}
	return r, nil
}

var valid = record{A: 1, B: 0x0203, C: 0x04050607, D: 0x08090a0b0c0d0e0f, Flag: true, ID: [4]byte{'i', 'd', '0', '1'}, Name: []byte("name"), Body: []byte("body")}

func TestEncoding(t *testing.T) {
	want := []byte("TEST\x01" + "\x01" + "\x02\x03" + "\x04\x05\x06\x07" + "\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f" +
		"\x01" + "id01" + "\x00\x00\x00\x04name" + "\x00\x00\x00\x04body")
	if got := valid.append(nil); !bytes.Equal(got, want) {
		t.Fatalf("encoded %q, want %q", got, want)
	}
}

func TestRoundTrip(t *testing.T) {
	in := valid.append(nil)
	r, err := parseRecord(in)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r.append(nil), in) {
		t.Fatalf("re-encoded %q, want %q", r.append(nil), in)
	}
	// Name is a copy, Body aliases the input.
	in[len(in)-1], in[len(in)-12] = 'X', 'X'
	if string(r.Name) != "name" {
		t.Errorf("Bytes aliases the input: %q", r.Name)
	}
	if string(r.Body) != "bodX" {
		t.Errorf("BytesNoCopy copied the input: %q", r.Body)
	}
	empty := valid
	empty.Name = nil
	if r, err := parseRecord(empty.append(nil)); err != nil || r.Name != nil {
		t.Errorf("empty name: %q, %v; want nil, nil", r.Name, err)
	}
}

func TestDecodeErrors(t *testing.T) {
	good := valid.append(nil)
	with := func(f func(*record)) []byte { r := valid; f(&r); return r.append(nil) }
	patch := func(i int, v byte) []byte { b := bytes.Clone(good); b[i] = v; return b }
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"short magic", []byte("TE"), ErrTruncated},
		{"magic", append([]byte("XEST"), good[4:]...), ErrMalformed},
		{"version", patch(4, 2), ErrVersion},
		{"truncated int", good[:8], ErrTruncated},
		{"flag 2", patch(20, 2), ErrMalformed},
		{"truncated fixed", good[:23], ErrTruncated},
		{"truncated length", good[:27], ErrTruncated},
		{"truncated string", good[:len(good)-1], ErrTruncated},
		{"name too large", with(func(r *record) { r.Name = make([]byte, 9) }), ErrTooLarge},
		{"body too small", with(func(r *record) { r.Body = nil }), ErrMalformed},
		{"body length 4 GiB-1", append(bytes.Clone(good[:len(good)-8]), 0xff, 0xff, 0xff, 0xff), ErrTooLarge},
		{"trailing byte", append(bytes.Clone(good), 0), ErrMalformed},
	}
	sentinels := []error{ErrTruncated, ErrTooLarge, ErrVersion, ErrMalformed}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := parseRecord(c.in)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			for _, s := range sentinels {
				if s != c.want && errors.Is(err, s) {
					t.Errorf("err = %v wraps %v too", err, s)
				}
			}
		})
	}
}

// The first failure sticks: later reads return zero values and Failf does
// not replace it.
func TestStickyError(t *testing.T) {
	d := NewDecoder([]byte{1})
	if d.U16("short") != 0 || d.Err() == nil {
		t.Fatal("reading past the end did not fail")
	}
	first := d.Err()
	d.Failf("later")
	if d.U8("after") != 0 || d.Bytes("after", 0, 1) != nil || d.FixedNoCopy("after", 0) != nil || d.Finish() != first {
		t.Fatalf("the first failure did not stick: %v", d.Err())
	}
	d = NewDecoder(nil)
	d.Failf("%d models", 65)
	if err := d.Finish(); !errors.Is(err, ErrMalformed) || err.Error() != "65 models" {
		t.Fatalf("Failf: %v", err)
	}
}

// A decoded record re-encodes to its input, so each has one encoding, and
// every failure wraps exactly one sentinel.
func FuzzDecoder(f *testing.F) {
	good := valid.append(nil)
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add([]byte("TEST\x01"))
	f.Add([]byte(nil))
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := parseRecord(bytes.Clone(in))
		if err != nil {
			n := 0
			for _, s := range []error{ErrTruncated, ErrTooLarge, ErrVersion, ErrMalformed} {
				if errors.Is(err, s) {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("err = %v wraps %d sentinels", err, n)
			}
			return
		}
		if again := r.append(nil); !bytes.Equal(again, in) {
			t.Fatalf("re-encoded %q, parsed %q", again, in)
		}
	})
}
