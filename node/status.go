package node

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/xssnick/tonutils-go/address"

	"github.com/cocoon-go/cocoon/chain"
	"github.com/cocoon-go/cocoon/chain/local"
	"github.com/cocoon-go/cocoon/contracts"
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
}

// ReadStatus reads the state of the network whose data directory is dataDir:
// through the chain the running network serves, or, when it is stopped, from
// the chain's directory.
func ReadStatus(ctx context.Context, dataDir string) (*Status, error) {
	m, err := ReadManifest(dataDir)
	if err != nil {
		return nil, err
	}
	var c chain.Chain
	if cl, err := local.Dial(m.ChainURL); err == nil && probe(ctx, cl) == nil {
		c = cl
	} else {
		lc, err := local.Open(filepath.Join(dataDir, "chain"), &local.Options{})
		if err != nil {
			return nil, fmt.Errorf("status: the network is not running and its chain cannot be opened: %w", err)
		}
		defer lc.Close()
		c = lc
	}
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
		}
		st.Channels = append(st.Channels, cs)
	}
	return st, nil
}

func probe(ctx context.Context, c chain.Chain) error {
	_, err := c.Now(ctx)
	return err
}

func accountAt(ctx context.Context, c chain.Chain, addr string) (*chain.Account, error) {
	a, err := address.ParseAddr(addr)
	if err != nil {
		return nil, fmt.Errorf("status: address %q: %w", addr, err)
	}
	return c.Account(ctx, a)
}
