package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"time"

	"github.com/xssnick/tonutils-go/address"

	"github.com/cocoon-go/cocoon/chain"
	"github.com/cocoon-go/cocoon/chain/local"
	"github.com/cocoon-go/cocoon/contracts"
	"github.com/cocoon-go/cocoon/payments"
)

// Status is the state of a `cocoon up` network as its chain shows it.
type Status struct {
	Chain    string          `json:"chain"`
	Note     string          `json:"note,omitempty"`
	Root     string          `json:"root"`
	Accounts []AccountStatus `json:"accounts"`
	Channels []ChannelStatus `json:"channels"`
}

// AccountStatus is one wallet of the network.
type AccountStatus struct {
	Name    string `json:"name"`
	Role    string `json:"role"`
	Address string `json:"address"`
	Balance uint64 `json:"balance"` // nanoTON
}

// ChannelStatus is one payment channel of the network. Amounts in nanoTON.
type ChannelStatus struct {
	Address      string `json:"address"`
	Payer        string `json:"payer"`
	Payee        string `json:"payee"`
	Deposit      uint64 `json:"deposit"`
	Claimed      uint64 `json:"claimed"`
	VoucherTotal uint64 `json:"voucher_total"` // the newest voucher the payee holds
	State        string `json:"state"`
	// ClosableAt, once the payer has started a close, is when it may finish
	// it and take back whatever is not claimed by then.
	ClosableAt time.Time `json:"closable_at,omitzero"`
	// ClaimError, on a running network, is why the payee's last claim on a
	// closing channel failed; it is retried until the channel closes.
	ClaimError string `json:"claim_error,omitempty"`
}

// ReadStatus reads the state of the network whose data directory is dataDir:
// from the running network, or, when it is stopped, from its chain's
// directory and the payees' stores.
func ReadStatus(ctx context.Context, dataDir string) (*Status, error) {
	m, err := ReadManifest(dataDir)
	if err != nil {
		return nil, err
	}
	if st, err := fetchStatus(ctx, m.ChainURL); err == nil {
		return st, nil
	}
	c, err := local.Open(filepath.Join(dataDir, "chain"), &local.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, fmt.Errorf("status: the network is not running and its chain cannot be opened: %w", err)
	}
	defer c.Close()
	return buildStatus(ctx, m, c, func(ch ManifestChannel, cfg contracts.ChannelConfig) uint64 {
		p, err := payments.OpenPayee(filepath.Join(dataDir, ch.Payee, "channels"), cfg)
		if err != nil {
			return 0
		}
		defer p.Close()
		return p.Total()
	})
}

// fetchStatus asks a running network for its status.
func fetchStatus(ctx context.Context, chainURL string) (*Status, error) {
	if chainURL == "" {
		return nil, errors.New("no URL")
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, chainURL+statusPath, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	var st Status
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st); err != nil {
		return nil, err
	}
	return &st, nil
}

// statusPath is where a running `cocoon up` serves its Status, beside its chain.
const statusPath = "/cocoon/v1/status"

// Status reads the running network's state from its chain and its payees.
func (n *Network) Status(ctx context.Context) (*Status, error) {
	st, err := buildStatus(ctx, n.manifest, n.Chain, func(ch ManifestChannel, _ contracts.ChannelConfig) uint64 {
		if ch.Payee == "proxy" {
			return n.ends.proxyPayee.Total()
		}
		if p := n.ends.workerPayees[ch.Payee]; p != nil {
			return p.Total()
		}
		return 0
	})
	if err != nil {
		return nil, err
	}
	// What the payees' watchers know of channels their payers are closing.
	closing := map[string]payments.ClosingChannel{}
	for _, c := range n.Proxy.ClosingChannels() {
		closing[c.Channel] = c
	}
	for _, w := range n.Workers {
		for _, c := range w.ClosingChannels() {
			closing[c.Channel] = c
		}
	}
	for i, ch := range st.Channels {
		if c, ok := closing[ch.Address]; ok && c.Error != "" {
			st.Channels[i].ClaimError = fmt.Sprintf("%d failed claims, the last: %s", c.Failures, c.Error)
		}
	}
	return st, nil
}

func buildStatus(ctx context.Context, m *Manifest, c chain.Chain, voucherTotal func(ManifestChannel, contracts.ChannelConfig) uint64) (*Status, error) {
	st := &Status{Chain: m.Chain, Root: m.Root, Accounts: []AccountStatus{}, Channels: []ChannelStatus{}}
	if m.Chain == local.Name {
		st.Note = local.Note
	}
	for _, a := range m.Accounts {
		acct, err := accountAt(ctx, c, a.Address)
		if err != nil {
			return nil, err
		}
		st.Accounts = append(st.Accounts, AccountStatus{Name: a.Name, Role: a.Role, Address: a.Address, Balance: acct.Balance})
	}
	for _, ch := range m.Channels {
		acct, err := accountAt(ctx, c, ch.Address)
		if err != nil {
			return nil, err
		}
		cs := ChannelStatus{Address: ch.Address, Payer: ch.Payer, Payee: ch.Payee, State: "not deployed"}
		if acct.Data != nil {
			s, err := contracts.ParseChannelData(acct.Data)
			if err != nil {
				return nil, fmt.Errorf("status: channel %s: %w", ch.Address, err)
			}
			cs.Deposit, cs.Claimed, cs.State = s.Deposit, s.Claimed, s.Status.String()
			if s.Status != contracts.ChannelOpen {
				cs.ClosableAt = s.ClosableAt().UTC()
			}
			cs.VoucherTotal = max(voucherTotal(ch, s.Config()), cs.Claimed)
		}
		st.Channels = append(st.Channels, cs)
	}
	return st, nil
}

func accountAt(ctx context.Context, c chain.Chain, addr string) (*chain.Account, error) {
	a, err := address.ParseAddr(addr)
	if err != nil {
		return nil, fmt.Errorf("status: address %q: %w", addr, err)
	}
	return c.Account(ctx, a)
}
