package tokenizer

import "unicode/utf8"

// StreamDecoder decodes generated tokens one at a time into text, holding
// back the start of a UTF-8 character whose other bytes are in later tokens.
type StreamDecoder struct {
	t   *Tokenizer
	buf []byte
}

// NewStreamDecoder returns a decoder for a new answer.
func (t *Tokenizer) NewStreamDecoder() *StreamDecoder { return &StreamDecoder{t: t} }

// Next adds token id and returns the text that is now complete, often "".
func (d *StreamDecoder) Next(id int) string {
	d.buf = append(d.buf, d.t.Piece(id)...)
	n := completePrefix(d.buf)
	s := string(d.buf[:n])
	d.buf = append(d.buf[:0], d.buf[n:]...)
	return s
}

// Flush returns whatever is held back, complete or not.
func (d *StreamDecoder) Flush() string {
	s := string(d.buf)
	d.buf = d.buf[:0]
	return s
}

// completePrefix is the length of the longest prefix of b that does not end
// inside a UTF-8 character. Invalid bytes count as complete.
func completePrefix(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		switch c := b[i]; {
		case c < utf8.RuneSelf:
			return len(b)
		case utf8.RuneStart(c):
			if utf8.FullRune(b[i:]) {
				return len(b)
			}
			return i
		}
	}
	return len(b)
}
