// Package simulated is a software TEE for development on machines without
// Intel TDX or AMD SEV-SNP. NOT FOR PRODUCTION.
//
// It holds the private keys of a fake TEE vendor derived from a seed on the
// developer's disk, and signs reports claiming any measurement its caller
// asks for. Simulated evidence therefore proves nothing: whoever can read the
// seed can impersonate every simulated worker, and the "TEE" is an ordinary
// process whose memory its host can read. It exists so that the whole
// network, attestation checks included, can run on a laptop through the same
// code path as real hardware (package attest verifies its reports with
// [attest.NewSimulatedVerifier] and the dev vendor's root swapped in).
//
// Production roles must not import this package, and clients and proxies
// accept simulated evidence only when explicitly given the dev vendor's root
// (vendor-root.pem, written by `cocoon up`). Every node using it should print
// [attest.SimulatedWarning].
package simulated

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cocoon-go/cocoon/attest"
)

// Measurement is the image hash of the simulated image: SHA-256 of
// "cocoon simulated image v1". Dev policies allow it; it names no real image,
// so no production allow-list should contain it.
var Measurement = sha256.Sum256([]byte("cocoon simulated image v1"))

// SeedFile is the name of the vendor seed file LoadVendor keeps in its directory.
const SeedFile = "simulated-vendor.seed"

// SeedSize is the size of a vendor seed in bytes.
const SeedSize = 32

// Validity of the dev vendor's certificates: fixed, so that the certificates
// derived from one seed are the same bytes on every run.
var (
	notBefore = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	notAfter  = time.Date(2124, 1, 1, 0, 0, 0, 0, time.UTC)
)

// Vendor is a fake TEE vendor: a root CA and an attestation key certified by
// it, all derived from a seed.
type Vendor struct {
	root    *x509.Certificate
	leafDER []byte
	leafKey ed25519.PrivateKey
}

// LoadVendor returns the vendor whose seed is in dir/SeedFile, creating dir
// (0700) and a fresh random seed (0600) if there is none. The same directory
// gives the same vendor, and the same root, on every run.
func LoadVendor(dir string) (*Vendor, error) {
	path := filepath.Join(dir, SeedFile)
	seed, err := readSeed(path)
	if errors.Is(err, fs.ErrNotExist) {
		seed, err = createSeed(dir, path)
	}
	if err != nil {
		return nil, err
	}
	return NewVendor(seed)
}

func readSeed(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("simulated: read vendor seed: %w", err)
	}
	seed, err := hex.DecodeString(strings.TrimSpace(string(data)))
	if err != nil || len(seed) != SeedSize {
		return nil, fmt.Errorf("simulated: vendor seed %s: want %d hex-encoded bytes", path, SeedSize)
	}
	return seed, nil
}

func createSeed(dir, path string) ([]byte, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("simulated: create vendor seed: %w", err)
	}
	seed := make([]byte, SeedSize)
	rand.Read(seed)
	// O_EXCL: if another process created the seed meanwhile, use its seed.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return readSeed(path)
	}
	if err != nil {
		return nil, fmt.Errorf("simulated: create vendor seed: %w", err)
	}
	_, err = f.WriteString(hex.EncodeToString(seed) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("simulated: write vendor seed %s: %w", path, err)
	}
	return seed, nil
}

// NewVendor derives a vendor from a SeedSize-byte seed, without touching
// the disk: the same seed always gives the same certificates and keys.
// Tests in other packages use it with a fixed seed.
func NewVendor(seed []byte) (*Vendor, error) {
	if len(seed) != SeedSize {
		return nil, fmt.Errorf("simulated: vendor seed of %d bytes (want %d)", len(seed), SeedSize)
	}
	rootKey := ed25519.NewKeyFromSeed(derive(seed, "root key", ed25519.SeedSize))
	leafKey := ed25519.NewKeyFromSeed(derive(seed, "attestation key", ed25519.SeedSize))
	// A short seed fingerprint in the names tells dev vendors apart in errors.
	id := hex.EncodeToString(derive(seed, "name", 4))

	rootTmpl := &x509.Certificate{
		SerialNumber:          serial(seed, "root serial"),
		Subject:               name("Cocoon Simulated TEE Root CA " + id),
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		return nil, fmt.Errorf("simulated: create root certificate: %w", err)
	}
	root, err := x509.ParseCertificate(rootDER)
	if err != nil {
		return nil, fmt.Errorf("simulated: parse root certificate: %w", err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber:          serial(seed, "attestation key serial"),
		Subject:               name("Cocoon Simulated TEE Attestation Key " + id),
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, root, leafKey.Public(), rootKey)
	if err != nil {
		return nil, fmt.Errorf("simulated: create attestation key certificate: %w", err)
	}
	return &Vendor{root: root, leafDER: leafDER, leafKey: leafKey}, nil
}

// derive expands seed into n bytes for the given purpose (HKDF-SHA256).
func derive(seed []byte, purpose string, n int) []byte {
	out, err := hkdf.Key(sha256.New, seed, nil, "cocoon simulated vendor: "+purpose, n)
	if err != nil {
		panic(err) // only for n beyond HKDF's limit
	}
	return out
}

func serial(seed []byte, purpose string) *big.Int {
	b := derive(seed, purpose, 16)
	b[0] &= 0x7f // positive
	b[0] |= 0x40 // and 16 bytes long
	return new(big.Int).SetBytes(b)
}

func name(cn string) pkix.Name {
	return pkix.Name{
		CommonName:         cn + " (DEVELOPMENT ONLY, NOT A TEE)",
		Organization:       []string{"Cocoon development"},
		OrganizationalUnit: []string{"Simulated TEE"},
	}
}

// RootPEM returns the vendor's root certificate in PEM, for a client or
// proxy to trust (see [attest.LoadRoots]).
func (v *Vendor) RootPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: v.root.Raw})
}

// Root returns the vendor's root certificate.
func (v *Vendor) Root() *x509.Certificate { return v.root }

// Roots returns a pool holding only the vendor's root certificate.
func (v *Vendor) Roots() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(v.root)
	return pool
}

// Verifier returns an attest verifier trusting this vendor.
func (v *Vendor) Verifier() *attest.SimulatedVerifier {
	return attest.NewSimulatedVerifier(v.Roots())
}

// Option configures a Device.
type Option func(*Device)

// WithDebug makes the device report that it runs in debug mode, as a TEE
// whose memory the host can read would; policies refuse such reports.
func WithDebug() Option { return func(d *Device) { d.debug = true } }

// WithClock sets the clock that dates the device's reports (default time.Now).
func WithClock(now func() time.Time) Option { return func(d *Device) { d.now = now } }

// Device is a simulated TEE running an image with a given measurement. It
// implements [attest.Producer].
type Device struct {
	vendor      *Vendor
	measurement [32]byte
	debug       bool
	now         func() time.Time
}

var _ attest.Producer = (*Device)(nil)

// Device returns a simulated TEE reporting the given measurement (usually
// [Measurement]) and signing with the vendor's attestation key.
func (v *Vendor) Device(measurement [32]byte, opts ...Option) *Device {
	d := &Device{vendor: v, measurement: measurement, now: time.Now}
	for _, o := range opts {
		o(d)
	}
	return d
}

// Kind returns attest.KindSimulated.
func (d *Device) Kind() string { return attest.KindSimulated }

// Produce returns a signed simulated report carrying reportData, with the
// attestation key's certificate attached.
func (d *Device) Produce(reportData [64]byte) ([]byte, error) {
	r := &attest.SimulatedReport{
		Measurement:  d.measurement,
		ReportData:   reportData,
		Debug:        d.debug,
		Issued:       d.now().Unix(),
		Certificates: [][]byte{d.vendor.leafDER},
	}
	r.Signature = ed25519.Sign(d.vendor.leafKey, r.SignedBytes())
	return r.Marshal(), nil
}
