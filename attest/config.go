package attest

import (
	"crypto/sha256"
	"fmt"
	"net/netip"
	"net/url"
	"strings"

	"github.com/cocoon-go/cocoon/internal/binenc"
	"github.com/cocoon-go/cocoon/price"
)

// EngineEmbedded is the engine endpoint of an engine that runs inside the
// worker's own process.
const EngineEmbedded = "embedded"

// Limits on a runtime configuration.
const (
	maxEndpoint = 512
	maxUpstream = 256
)

// ConfigDomain starts the bytes [Bundle.ConfigDigest] hashes, versioning
// the digest apart from the bundle's own encoding.
const ConfigDomain = "cocoon runtime config v1\x00"

// RuntimeConfig is, with the bundle's models (names, weights hashes and the
// engine's names for them), what decides where a worker's plaintext goes and
// what it charges beyond its measured code. The worker's host chooses it at
// start (flags, config file), so the worker attests it in its key bundle,
// where clients and proxies see it, can require a local engine, and can
// allow-list its digest ([Bundle.ConfigDigest]) as they allow-list
// measurements.
type RuntimeConfig struct {
	// Engine is where the worker sends each decrypted prompt:
	// EngineEmbedded, a unix socket ("unix:/path"), or the http(s) base URL
	// of an OpenAI-compatible server, without credentials.
	Engine string
	// KEM is the HPKE KEM of the bundle's HPKE key.
	KEM uint16
	// Price is what the worker charges per token.
	Price price.Price
}

// Validate reports whether c can be attested: an engine endpoint that is
// EngineEmbedded, "unix:/absolute/path" or an http(s) URL with a host and
// without credentials, at most 512 printable ASCII bytes.
func (c *RuntimeConfig) Validate() error {
	e := c.Engine
	if e == "" || len(e) > maxEndpoint || !printableASCII(e) {
		return malformed("config: engine endpoint %q: want 1 to %d printable ASCII bytes", e, maxEndpoint)
	}
	if e == EngineEmbedded {
		return nil
	}
	if path, ok := strings.CutPrefix(e, "unix:"); ok {
		if !strings.HasPrefix(path, "/") {
			return malformed("config: engine endpoint %q: want unix:/absolute/path", e)
		}
		return nil
	}
	u, err := url.Parse(e)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return malformed("config: engine endpoint %q: want %q, unix:/path or an http(s) URL", e, EngineEmbedded)
	}
	if u.User != nil {
		return malformed("config: engine endpoint %q carries credentials", u.Redacted())
	}
	return nil
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// LocalEngine reports whether endpoint lies on the worker's own machine,
// inside its TEE: the embedded engine, a unix socket, or a URL whose host is
// a loopback IP address literal. A host name, even "localhost", is not
// local: name resolution may be in the hands of the machine's host.
func LocalEngine(endpoint string) bool {
	if endpoint == EngineEmbedded || strings.HasPrefix(endpoint, "unix:/") {
		return true
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	ip, err := netip.ParseAddr(u.Hostname())
	return err == nil && ip.Unmap().IsLoopback()
}

// appendConfig appends the runtime configuration of b, the part of its
// encoding after the validity window (see [Bundle.Marshal]).
func (b *Bundle) appendConfig(w []byte) []byte {
	c := &b.Config
	w = binenc.AppendBytes(w, []byte(c.Engine))
	w = binenc.AppendU16(w, c.KEM)
	for _, v := range []uint64{c.Price.PerToken, c.Price.PromptMul, c.Price.CachedMul, c.Price.CompletionMul} {
		w = binenc.AppendU64(w, v)
	}
	models := sortedModels(b.Models)
	w = binenc.AppendU16(w, uint16(len(models)))
	for _, m := range models {
		w = binenc.AppendBytes(w, []byte(m.Name))
		w = binenc.AppendBytes(w, []byte(m.Hash))
		w = binenc.AppendBytes(w, []byte(m.Upstream))
	}
	return w
}

// parseConfig reads what appendConfig wrote into b.
func (b *Bundle) parseConfig(r *binenc.Decoder) {
	c := &b.Config
	c.Engine = string(r.BytesNoCopy("engine", 1, maxEndpoint))
	c.KEM = r.U16("kem")
	c.Price = price.Price{PerToken: r.U64("price"), PromptMul: r.U64("prompt multiplier"),
		CachedMul: r.U64("cached multiplier"), CompletionMul: r.U64("completion multiplier")}
	n := int(r.U16("model count"))
	if n > maxModels {
		r.Failf("%d models (at most %d)", n, maxModels)
	}
	for i := 0; i < n && r.Err() == nil; i++ {
		b.Models = append(b.Models, Model{
			Name:     string(r.BytesNoCopy("model name", 1, maxModelName)),
			Hash:     string(r.BytesNoCopy("model hash", 0, modelHashChars)),
			Upstream: string(r.BytesNoCopy("upstream name", 0, maxUpstream)),
		})
	}
}

// ConfigDigest returns the digest of b's runtime configuration: SHA-256 of
// ConfigDomain ‖ the configuration's canonical encoding (engine endpoint,
// KEM, prices, and the models with their weights hashes and upstream names;
// see [Bundle.Marshal]). It is what allow-lists of configurations name
// ([Policy.ConfigDigests]); keys and validity do not enter it, so it stays
// the same across a worker's refreshes and restarts.
func (b *Bundle) ConfigDigest() [32]byte {
	h := sha256.New()
	h.Write([]byte(ConfigDomain))
	h.Write(b.appendConfig(nil))
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// ConfigString shows b's runtime configuration on one line, as `cocoon
// attest verify` prints it.
func (b *Bundle) ConfigString() string {
	var models []string
	for _, m := range sortedModels(b.Models) {
		s := m.Name
		if m.Upstream != "" && m.Upstream != m.Name {
			s += "=" + m.Upstream
		}
		if m.Hash != "" {
			s += "@" + m.Hash[:12]
		}
		models = append(models, s)
	}
	c := &b.Config
	return fmt.Sprintf("engine %s; models %s; kem %#04x; price %d nanoTON/token, multipliers prompt %d cached %d completion %d (of %d)",
		c.Engine, strings.Join(models, ","), c.KEM, c.Price.PerToken, c.Price.PromptMul, c.Price.CachedMul, c.Price.CompletionMul, price.One)
}
