// Package chainspec opens the chain a --chain spec names: the embedded local chain in a directory,
// a local chain served over HTTP, or TON through a liteserver config. It sits above chain, chain/local
// and chain/ton, which cannot import one another's users.
package chainspec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/cocoon-go/cocoon/chain"
	"github.com/cocoon-go/cocoon/chain/local"
	"github.com/cocoon-go/cocoon/chain/ton"
)

// Help says which --chain specs Open takes, for help texts.
const Help = "local:DIR (the embedded local chain stored in DIR), local+http://HOST:PORT (a local chain served by 'cocoon chain serve'), ton:testnet, ton:mainnet, or ton:CONFIG (a global config file or URL)"

// Open opens the chain that spec names (see Help). Close the returned io.Closer when done:
// for local:DIR it releases the directory, which only one process may hold at a time.
func Open(ctx context.Context, spec string, log *slog.Logger) (chain.Chain, io.Closer, error) {
	kind, rest, _ := strings.Cut(spec, ":")
	switch {
	case kind == "local" && rest != "":
		dir := expandHome(rest)
		c, err := local.Open(dir, &local.Options{Logger: log})
		if errors.Is(err, local.ErrLocked) {
			return nil, nil, fmt.Errorf("local chain %s is held by another process (a running 'cocoon up' or 'cocoon chain serve'?); "+
				"to share it, serve it with 'cocoon chain serve --dir %s' and pass the --chain local+http://HOST:PORT it prints: %w", dir, dir, err)
		}
		if err != nil {
			return nil, nil, err
		}
		return c, c, nil
	case kind == "local+http" || kind == "local+https":
		c, err := local.Dial(strings.TrimPrefix(spec, "local+"))
		if err != nil {
			return nil, nil, err
		}
		return c, io.NopCloser(nil), nil
	case kind == "ton" && rest != "":
		c, err := ton.Dial(ctx, rest, nil)
		if err != nil {
			return nil, nil, err
		}
		return c, c, nil
	}
	return nil, nil, fmt.Errorf("chainspec: chain %q: want %s", spec, Help)
}

// expandHome replaces a leading "~/" with the home directory: in "local:~/x" no shell does it.
func expandHome(p string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, rest)
		}
	}
	return p
}
