package local

import (
	"bytes"
	"errors"
	"testing"
)

// The server decodes request bodies from any peer: whatever the bytes, decoding must refuse them with a
// bad-request error or succeed, never panic. Seeds are in testdata/fuzz; run with
// go test -fuzz FuzzDecodeSend ./chain/local (and FuzzDecodeGetMethod).

func FuzzDecodeSend(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		msg, err := decodeSend(bytes.NewReader(body))
		checkDecoded(t, msg != nil, err)
		if err == nil {
			msg.Hash() // the cell is whole
		}
	})
}

func FuzzDecodeGetMethod(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		addr, _, _, err := decodeGetMethod(bytes.NewReader(body))
		checkDecoded(t, addr != nil, err)
	})
}

func checkDecoded(t *testing.T, ok bool, err error) {
	var req *requestError
	switch {
	case err != nil && !errors.As(err, &req):
		t.Fatalf("decoding failed without a bad-request error: %v", err)
	case err == nil && !ok:
		t.Fatal("decoding succeeded with nothing decoded")
	}
}
