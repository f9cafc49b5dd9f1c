package nvidia

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/cocoon-go/cocoon/attest"
	"github.com/cocoon-go/cocoon/internal/binenc"
)

// Limits on GPU evidence. An NRAS token is 2 to 5 KiB; a node has at most
// eight GPUs, a rack-scale node a few more.
const (
	MaxEvidenceSize = 256 << 10 // bytes of marshaled evidence, the limit of attest.Evidence.GPU
	MaxGPUs         = 64        // detached tokens in one evidence
	maxToken        = 64 << 10  // bytes of one compact JWT
	maxName         = 64        // bytes of a submodule name such as "GPU-0"
)

const (
	evidenceMagic   = "CCNV"
	evidenceVersion = 1
)

// Evidence is what a worker publishes as attest.Evidence.GPU: the result of
// one NRAS attestation of all its GPUs, exactly as NRAS returned it.
type Evidence struct {
	// Overall is the overall EAT: a compact JWT whose submods claim holds
	// the SHA-256 of each detached token.
	Overall string
	// GPUs are the detached EATs, one per GPU, sorted by name.
	GPUs []Detached
}

// Detached is one GPU's detached EAT and the submodule name ("GPU-0") under
// which the overall token lists its digest.
type Detached struct {
	Name  string
	Token string
}

// Marshal returns the wire form of e, with its GPUs sorted by name.
//
// Layout (version 1): "CCNV" 0x01, the overall token as uint32 big-endian
// length ‖ bytes, the number of GPUs as uint16 big-endian, then for each GPU
// its name and its token, each as length ‖ bytes.
func (e *Evidence) Marshal() []byte {
	gpus := slices.Clone(e.GPUs)
	slices.SortFunc(gpus, func(a, b Detached) int { return strings.Compare(a.Name, b.Name) })
	w := binenc.AppendMagic(nil, evidenceMagic, evidenceVersion)
	w = binenc.AppendBytes(w, []byte(e.Overall))
	w = binenc.AppendU16(w, uint16(len(gpus)))
	for _, g := range gpus {
		w = binenc.AppendBytes(w, []byte(g.Name))
		w = binenc.AppendBytes(w, []byte(g.Token))
	}
	return w
}

// ParseEvidence decodes evidence encoded by [Evidence.Marshal]. It accepts
// only the canonical form: 1 to MaxGPUs GPUs with distinct names in
// ascending order, names of letters, digits, '-' and '_', tokens of
// base64url characters and dots, nothing left over. It does not look inside
// the tokens; [VerifyTokens] does.
func ParseEvidence(p []byte) (*Evidence, error) {
	if len(p) > MaxEvidenceSize {
		return nil, malformed("%d bytes (at most %d)", len(p), MaxEvidenceSize)
	}
	r := binenc.NewDecoder(p)
	r.Magic(evidenceMagic, evidenceVersion)
	e := &Evidence{Overall: token(r, "overall token")}
	n := int(r.U16("gpu count"))
	if r.Err() == nil && (n == 0 || n > MaxGPUs) {
		r.Failf("gpu count %d: want 1 to %d", n, MaxGPUs)
	}
	for i := 0; i < n && r.Err() == nil; i++ {
		name := string(r.BytesNoCopy("gpu name", 1, maxName))
		if r.Err() == nil && !validName(name) {
			r.Failf("gpu name %q: want letters, digits, '-' and '_'", name)
		}
		if r.Err() == nil && i > 0 && name <= e.GPUs[i-1].Name {
			r.Failf("gpu %q after %q: names must be distinct and sorted", name, e.GPUs[i-1].Name)
		}
		e.GPUs = append(e.GPUs, Detached{Name: name, Token: token(r, "token of "+name)})
	}
	if err := r.Finish(); err != nil {
		return nil, malformed("%v", err)
	}
	return e, nil
}

// token reads a compact JWT: base64url segments separated by dots.
func token(r *binenc.Decoder, field string) string {
	t := r.BytesNoCopy(field, 1, maxToken)
	for _, c := range t {
		if !(c == '.' || c == '-' || c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			r.Failf("%s: byte %#x is not base64url or '.'", field, c)
			break
		}
	}
	return string(t)
}

func validName(s string) bool {
	for _, c := range []byte(s) {
		if !(c == '-' || c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return s != ""
}

// ParseNRASResponse turns the body of NRAS's POST /v3/attest/gpu, a JSON
// array [["JWT", overall], {"GPU-0": token, ...}], into Evidence, checking
// it against the same limits as [ParseEvidence].
func ParseNRASResponse(body []byte) (*Evidence, error) {
	var parts []json.RawMessage
	if err := json.Unmarshal(body, &parts); err != nil {
		return nil, malformed("NRAS response: %v", err)
	}
	if len(parts) != 2 {
		return nil, malformed("NRAS response: %d elements, want [[\"JWT\", token], {name: token}]", len(parts))
	}
	var overall []string
	if err := json.Unmarshal(parts[0], &overall); err != nil || len(overall) != 2 || overall[0] != "JWT" {
		return nil, malformed("NRAS response: first element is not [\"JWT\", token]")
	}
	var detached map[string]string
	if err := json.Unmarshal(parts[1], &detached); err != nil {
		return nil, malformed("NRAS response: second element is not {name: token}: %v", err)
	}
	if len(detached) > MaxGPUs {
		return nil, malformed("NRAS response: %d GPUs (at most %d)", len(detached), MaxGPUs)
	}
	e := &Evidence{Overall: overall[1]}
	for name, tok := range detached {
		e.GPUs = append(e.GPUs, Detached{Name: name, Token: tok})
	}
	// Marshal sorts; parsing the result applies every limit and syntax rule.
	return ParseEvidence(e.Marshal())
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: nvidia GPU evidence: %s", attest.ErrMalformed, fmt.Sprintf(format, args...))
}
