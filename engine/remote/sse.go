package remote

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// events reads server-sent events and yields the data of each, as soon as
// the blank line that ends it has arrived.
type events struct {
	r    *bufio.Reader
	max  int64  // limit on one event's data, and on one line
	data []byte // the current event's data, reused
	long []byte // a line longer than r's buffer, reused
}

func newEvents(r io.Reader, max int64) *events {
	return &events{r: bufio.NewReaderSize(r, 8<<10), max: max}
}

// next returns the data of the next event that has any, valid until the next
// call, or io.EOF at the end of the stream. Comments and fields other than
// data (event, id, retry) are skipped; several data lines are joined with
// newlines, as the SSE specification says.
func (s *events) next() ([]byte, error) {
	s.data = s.data[:0]
	has := false
	for {
		line, err := s.line()
		if err == io.EOF && has {
			return s.data, nil // a last event without its blank line
		}
		if err != nil {
			return nil, err
		}
		if len(line) == 0 {
			if has {
				return s.data, nil
			}
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		if string(field) != "data" {
			continue // a comment (empty field) or a field we do not need
		}
		value = bytes.TrimPrefix(value, []byte(" "))
		if has {
			s.data = append(s.data, '\n')
		}
		s.data = append(s.data, value...)
		has = true
		if int64(len(s.data)) > s.max {
			return nil, fmt.Errorf("stream event exceeds %d bytes", s.max)
		}
	}
}

// line returns the next line without its line ending (\n, \r\n), valid until
// the next call. A last line without an ending is returned with a nil error.
func (s *events) line() ([]byte, error) {
	line, err := s.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		s.long = append(s.long[:0], line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			if int64(len(s.long)) > s.max {
				return nil, fmt.Errorf("stream line exceeds %d bytes", s.max)
			}
			line, err = s.r.ReadSlice('\n')
			s.long = append(s.long, line...)
		}
		line = s.long
	}
	if err == io.EOF && len(line) > 0 {
		err = nil
	}
	if err != nil {
		return nil, err
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	return bytes.TrimSuffix(line, []byte("\r")), nil
}
