package remote

import (
	"bytes"
	"encoding/json"
)

// A response object is rewritten by copying its members, except the few this
// package replaces or removes, byte for byte. Decoding every chunk into a map
// and encoding it again did the same at ten times the cost (see
// BenchmarkRelay); FuzzRewrite checks the two agree.

// object is what rewrite learned of a response object.
type object struct {
	usage   []byte // the usage member's value, or nil
	choices []byte // the choices member's value, or nil
	error   []byte // the error member's value, or nil
	object  []byte // the object member's value, or nil
}

// rewrite returns the JSON object data with its id, model and (when created
// is not nil) created members set to the given values, first, and its usage
// member dropped if dropUsage; all other members keep their bytes and order.
// It reports false if data is not a JSON object.
func rewrite(data []byte, id, model, created json.RawMessage, dropUsage bool) ([]byte, object, bool) {
	var o object
	if !json.Valid(data) {
		return nil, o, false
	}
	out := make([]byte, 0, len(data)+len(id)+len(model)+32)
	out = append(out, `{"id":`...)
	out = append(out, id...)
	out = append(out, `,"model":`...)
	out = append(out, model...)
	if created != nil {
		out = append(out, `,"created":`...)
		out = append(out, created...)
	}
	ok := members(data, func(key, value []byte) {
		switch string(canonical(key)) {
		case `"id"`, `"model"`:
			return
		case `"created"`:
			if created != nil {
				return
			}
		case `"usage"`:
			o.usage = value
			if dropUsage {
				return
			}
		case `"choices"`:
			o.choices = value
		case `"error"`:
			o.error = value
		case `"object"`:
			o.object = value
		}
		out = append(out, ',')
		out = append(out, key...)
		out = append(out, ':')
		out = append(out, value...)
	})
	if !ok {
		return nil, o, false
	}
	return append(out, '}'), o, true
}

// members calls fn with the key (quoted, as written) and the value of each
// member of the object data, in order, and reports false if data is not an
// object. data must be valid JSON.
func members(data []byte, fn func(key, value []byte)) bool {
	i := skipSpace(data, 0)
	if data[i] != '{' {
		return false
	}
	i = skipSpace(data, i+1)
	for data[i] != '}' {
		if data[i] == ',' {
			i = skipSpace(data, i+1)
		}
		end := endString(data, i)
		key := data[i:end]
		i = skipSpace(data, end) // at ':'
		i = skipSpace(data, i+1) // at the value
		end = endValue(data, i)
		fn(key, data[i:end])
		i = skipSpace(data, end)
	}
	return true
}

// canonical returns key as Go's encoder would write it: the same bytes
// unless the key has escapes, which no server uses for these names but JSON
// allows.
func canonical(key []byte) []byte {
	if bytes.IndexByte(key, '\\') < 0 {
		return key
	}
	var s string
	json.Unmarshal(key, &s)
	b, _ := json.Marshal(s)
	return b
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// endString returns the index after the string that starts at data[i].
func endString(data []byte, i int) int {
	for j := i + 1; ; j++ {
		switch data[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
}

// endValue returns the index after the value that starts at data[i].
func endValue(data []byte, i int) int {
	switch data[i] {
	case '"':
		return endString(data, i)
	case '{', '[':
		depth := 0
		for j := i; ; {
			switch data[j] {
			case '"':
				j = endString(data, j)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
			j++
		}
	default: // a number, true, false or null
		j := i
		for j < len(data) && !isDelimiter(data[j]) {
			j++
		}
		return j
	}
}

// isDelimiter reports whether c may follow a number or literal.
func isDelimiter(c byte) bool {
	switch c {
	case ',', '}', ']', ' ', '\t', '\r', '\n':
		return true
	}
	return false
}
