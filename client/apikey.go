package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"strings"

	"github.com/cocoon-go/cocoon/api"
	"github.com/cocoon-go/cocoon/internal/atomicfile"
)

// APIKey lets an app that presents it (Authorization: Bearer KEY, as
// OpenAI SDKs send it) spend up to Limit through the client, over all
// restarts: what it spent is read back from the client's journal, where
// each receipt is booked with the key's name. Only the key's SHA-256 is
// kept; NewAPIKey makes one.
type APIKey struct {
	Name      string `json:"name"`
	KeySHA256 string `json:"key_sha256"` // hex SHA-256 of the key
	Limit     uint64 `json:"limit"`      // nanoTON
}

// NewAPIKey returns a fresh random API key, to give to an app, and its
// entry for Config.APIKeys (or an API keys file, see AddAPIKey).
func NewAPIKey(name string, limit uint64) (key string, entry APIKey) {
	b := make([]byte, 32)
	rand.Read(b)
	key = "sk-cocoon-" + base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(key))
	return key, APIKey{Name: name, KeySHA256: hex.EncodeToString(sum[:]), Limit: limit}
}

// keyHash is an API key's SHA-256 and its name.
type keyHash struct {
	name string
	sum  []byte
}

// parseAPIKeys checks keys: distinct non-empty names, hex SHA-256 hashes,
// positive limits.
func parseAPIKeys(keys []APIKey) ([]keyHash, error) {
	var out []keyHash
	seen := map[string]bool{}
	for _, k := range keys {
		sum, err := hex.DecodeString(k.KeySHA256)
		switch {
		case k.Name == "" || seen[k.Name]:
			return nil, fmt.Errorf("client: API key name %q is empty or used twice", k.Name)
		case err != nil || len(sum) != sha256.Size:
			return nil, fmt.Errorf("client: API key %q: key_sha256 is not a hex SHA-256", k.Name)
		case k.Limit == 0:
			return nil, fmt.Errorf("client: API key %q: a limit of 0 nanoTON spends nothing", k.Name)
		}
		seen[k.Name] = true
		out = append(out, keyHash{name: k.Name, sum: sum})
	}
	return out, nil
}

// apiKeyCtx is the context key of the name of the API key a request
// presented.
type apiKeyCtx struct{}

// authorize passes on to next the requests that present one of the
// client's API keys, with the key's name in their context, and refuses the
// others with OpenAI's 401. Every key is compared, in constant time.
func (c *Client) authorize(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		scheme, key, ok := strings.Cut(auth, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || key == "" {
			api.WriteError(w, api.Errorf(http.StatusUnauthorized, api.TypeInvalidRequest, "invalid_api_key",
				"you didn't provide an API key: send it as Authorization: Bearer KEY"))
			return
		}
		sum := sha256.Sum256([]byte(key))
		var name string
		for _, k := range c.keys {
			if subtle.ConstantTimeCompare(sum[:], k.sum) == 1 {
				name = k.name
			}
		}
		if name == "" {
			api.WriteError(w, api.Errorf(http.StatusUnauthorized, api.TypeInvalidRequest, "invalid_api_key",
				"incorrect API key provided"))
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), apiKeyCtx{}, name)))
	})
}

// LoadAPIKeys reads an API keys file: a JSON array of APIKey.
func LoadAPIKeys(path string) ([]APIKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("client: API keys: %w", err)
	}
	var keys []APIKey
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&keys); err != nil {
		return nil, fmt.Errorf("client: API keys %s: %w", path, err)
	}
	if _, err := parseAPIKeys(keys); err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	return keys, nil
}

// AddAPIKey makes a new API key named name that may spend limit nanoTON,
// adds its hash to the API keys file at path (creating it), and returns
// the key, which is kept nowhere else.
func AddAPIKey(path, name string, limit uint64) (string, error) {
	var keys []APIKey
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		if keys, err = LoadAPIKeys(path); err != nil {
			return "", err
		}
	}
	key, entry := NewAPIKey(name, limit)
	keys = append(keys, entry)
	if _, err := parseAPIKeys(keys); err != nil {
		return "", err
	}
	b, _ := json.MarshalIndent(keys, "", "  ")
	if err := atomicfile.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		return "", fmt.Errorf("client: API keys: %w", err)
	}
	return key, nil
}
