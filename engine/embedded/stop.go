package embedded

import "strings"

// stopper finds stop strings in generated text that arrives in pieces. Text
// that could be the start of a stop string is held back until the next
// pieces decide it, so a stop string is never even partly sent.
type stopper struct {
	stops []string
	held  string
}

func newStopper(stops []string) *stopper {
	s := &stopper{}
	for _, stop := range stops {
		if stop != "" {
			s.stops = append(s.stops, stop)
		}
	}
	return s
}

// push adds text and returns what may be sent now. When a stop string is
// complete, it returns the text before it and true; the rest is dropped.
func (s *stopper) push(text string) (string, bool) {
	if len(s.stops) == 0 {
		return text, false
	}
	buf := s.held + text
	first := -1
	for _, stop := range s.stops {
		if i := strings.Index(buf, stop); i >= 0 && (first < 0 || i < first) {
			first = i
		}
	}
	if first >= 0 {
		s.held = ""
		return buf[:first], true
	}
	keep := 0 // the longest tail of buf that begins some stop string
	for _, stop := range s.stops {
		for n := min(len(stop)-1, len(buf)); n > keep; n-- {
			if strings.HasSuffix(buf, stop[:n]) {
				keep = n
				break
			}
		}
	}
	s.held = buf[len(buf)-keep:]
	return buf[:len(buf)-keep], false
}

// flush returns the held text, once no more text will come.
func (s *stopper) flush() string {
	h := s.held
	s.held = ""
	return h
}
