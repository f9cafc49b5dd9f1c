// Package identity creates and keeps the long-lived keys of a node in its
// data directory: an Ed25519 key for signing and a self-signed TLS
// certificate. A second start on the same directory keeps the same identity.
package identity

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
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
	"time"

	"github.com/cocoon-go/cocoon/internal/atomicfile"
)

// Ed25519 reads the key at path, or creates one there if there is none.
func Ed25519(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		blk, _ := pem.Decode(b)
		if blk == nil || blk.Type != "PRIVATE KEY" {
			return nil, fmt.Errorf("identity: %s: not a PEM private key", path)
		}
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("identity: %s: %w", path, err)
		}
		ek, ok := k.(ed25519.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("identity: %s: not an Ed25519 key", path)
		}
		return ek, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("identity: %w", err)
	}
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	if err := WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
		return nil, err
	}
	return k, nil
}

// Secret reads the bytes at path, or creates them there with gen.
func Secret(path string, gen func() ([]byte, error)) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		return b, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("identity: %w", err)
	}
	b, err = gen()
	if err != nil {
		return nil, fmt.Errorf("identity: %s: %w", path, err)
	}
	return b, WriteFile(path, b)
}

// TLS reads the certificate and key at path (one PEM file), or creates a
// self-signed ECDSA P-256 certificate for name there.
func TLS(path, name string) (tls.Certificate, error) {
	if _, err := os.Stat(path); err == nil {
		c, err := tls.LoadX509KeyPair(path, path)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("identity: %s: %w", path, err)
		}
		return c, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name, "localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return tls.Certificate{}, err
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	out = append(out, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})...)
	if err := WriteFile(path, out); err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(out, out)
}

// KeyHash is the SHA-256 of a certificate's SubjectPublicKeyInfo: the pin
// that peers of a self-signed node check.
func KeyHash(cert *x509.Certificate) [32]byte {
	return sha256.Sum256(cert.RawSubjectPublicKeyInfo)
}

// CertKeyHash is KeyHash of the leaf of c.
func CertKeyHash(c tls.Certificate) ([32]byte, error) {
	if len(c.Certificate) == 0 {
		return [32]byte{}, errors.New("identity: empty certificate")
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return [32]byte{}, fmt.Errorf("identity: %w", err)
	}
	return KeyHash(leaf), nil
}

// PinnedConfig returns a TLS client configuration that accepts exactly the
// peer whose key hashes to pin (hex). With an empty pin it accepts any peer:
// the content is sealed end to end, so TLS then only hides metadata.
func PinnedConfig(pin string) (*tls.Config, error) {
	cfg := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}
	if pin == "" {
		return cfg, nil
	}
	want, err := hex.DecodeString(pin)
	if err != nil || len(want) != sha256.Size {
		return nil, fmt.Errorf("identity: pin %q is not a hex SHA-256", pin)
	}
	cfg.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) == 0 {
			return errors.New("identity: peer sent no certificate")
		}
		c, err := x509.ParseCertificate(raw[0])
		if err != nil {
			return fmt.Errorf("identity: peer certificate: %w", err)
		}
		if got := KeyHash(c); hex.EncodeToString(got[:]) != hex.EncodeToString(want) {
			return fmt.Errorf("identity: peer key %x does not match pin %s", got, pin)
		}
		return nil
	}
	return cfg, nil
}

// WriteFile writes b to path atomically and durably with mode 0600, creating the directory.
func WriteFile(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	if err := atomicfile.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	return nil
}
