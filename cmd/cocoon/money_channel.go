package main

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/xssnick/tonutils-go/address"

	"github.com/cocoon-go/cocoon/chain"
	"github.com/cocoon-go/cocoon/contracts"
	"github.com/cocoon-go/cocoon/identity"
	"github.com/cocoon-go/cocoon/nanoton"
	"github.com/cocoon-go/cocoon/payments"
)

const channelHelp = `Usage: cocoon channel COMMAND [flags]

  open      deploy a channel from the wallet of --key (the payer) to a payee, with a deposit
  top-up    add to a channel's deposit (payer)
  show      print a channel's payer, payee, deposit, claimed, seqno and state
  voucher   sign a cumulative voucher with the payer's voucher key (prints it in base64)
  claim     claim with a signed voucher (payee)
  close     start the close (payer); 'close --finish' takes back what is left after the delay

A payment channel locks the payer's deposit; the payee claims with payer-signed cumulative vouchers;
the payer can close and, after a delay during which the payee can still claim, takes back the rest.
Vouchers are signed by a voucher key, not the wallet key (--voucher-key, by default FILE.voucher.pem
beside the --key FILE.pem). Every command takes --chain and --json; run 'cocoon channel COMMAND --help'.
`

func runChannel(ctx context.Context, args []string) error {
	return runSub(ctx, "channel", channelHelp, map[string]func(context.Context, []string) error{
		"open": runChannelOpen, "top-up": runChannelTopUp, "show": runChannelShow, "voucher": runChannelVoucher,
		"claim": runChannelClaim, "close": runChannelClose,
	}, args)
}

// voucherKeyFlag declares --voucher-key; voucherKey resolves its default from --key.
func voucherKeyFlag(m *moneyCmd) *string {
	return m.fs.String("voucher-key", "", "Ed25519 key file that signs the payer's vouchers (default: the --key file with .voucher before its extension)")
}

func (m *moneyCmd) voucherKeyPath(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	ext := filepath.Ext(m.key)
	return strings.TrimSuffix(m.key, ext) + ".voucher" + ext
}

// channelJSON is a channel's state: amounts in nanoTON, times in unix seconds (0: none).
type channelJSON struct {
	Chain        string `json:"chain"`
	Address      string `json:"address"`
	ID           string `json:"channel_id"`
	State        string `json:"state"`
	Payer        string `json:"payer"`
	Payee        string `json:"payee"`
	PayerKey     string `json:"payer_key"`
	PayeeKey     string `json:"payee_key"`
	Nonce        uint64 `json:"nonce"`
	Deposit      uint64 `json:"deposit"`
	Claimed      uint64 `json:"claimed"`
	Locked       uint64 `json:"locked"` // deposit − claimed while not closed
	Seqno        uint64 `json:"seqno"`
	Balance      uint64 `json:"balance"`
	CloseDelay   int64  `json:"close_delay_s"`
	ClosingSince int64  `json:"closing_since"`
	ClosableAt   int64  `json:"closable_at"`
}

// readChannel reads the channel at addr from its data.
func (m *moneyCmd) readChannel(addr *address.Address) (*contracts.ChannelState, channelJSON, error) {
	acc, err := contracts.ActiveAccount(m.ctx, m.chain, "channel", addr)
	if err != nil {
		return nil, channelJSON{}, err
	}
	st, err := contracts.ParseChannelData(acc.Data)
	if err != nil {
		return nil, channelJSON{}, fmt.Errorf("channel %s: %w", m.addr(addr), err)
	}
	out := channelJSON{
		Chain: m.chain.Name(), Address: m.addr(addr), ID: hex.EncodeToString(addr.Data()), State: st.Status.String(),
		Payer: m.addr(st.Payer), Payee: m.addr(st.Payee),
		PayerKey: hex.EncodeToString(st.PayerKey), PayeeKey: hex.EncodeToString(st.PayeeKey),
		Nonce: st.Nonce, Deposit: st.Deposit, Claimed: st.Claimed, Locked: st.Locked(), Seqno: st.Seqno,
		Balance: acc.Balance, CloseDelay: int64(st.CloseDelay / time.Second),
	}
	if st.Status == contracts.ChannelClosed {
		out.Locked = 0 // the refund took it
	}
	if st.Status != contracts.ChannelOpen {
		out.ClosingSince, out.ClosableAt = st.ClosingSince.Unix(), st.ClosableAt().Unix()
	}
	return st, out, nil
}

func (c channelJSON) human() string {
	s := fmt.Sprintf("channel:  %s (%s)\nstate:    %s\npayer:    %s\npayee:    %s\ndeposit:  %s TON\nclaimed:  %s TON\nlocked:   %s TON\nseqno:    %d\nbalance:  %s TON\nclose delay: %v\n",
		c.Address, c.Chain, c.State, c.Payer, c.Payee, nanoton.Format(c.Deposit), nanoton.Format(c.Claimed), nanoton.Format(c.Locked),
		c.Seqno, nanoton.Format(c.Balance), time.Duration(c.CloseDelay)*time.Second)
	if c.ClosableAt != 0 {
		s += fmt.Sprintf("closing since %s; closable at %s\n", time.Unix(c.ClosingSince, 0).UTC().Format(time.RFC3339), time.Unix(c.ClosableAt, 0).UTC().Format(time.RFC3339))
	}
	return s
}

func runChannelOpen(ctx context.Context, args []string) error {
	m := newMoneyCmd("channel open", "Opens a payment channel from the wallet of --key (the payer) to --payee, whose public key\nis --payee-key, with --deposit in it, and prints its address. As every Cocoon payer does, it\nresumes the first channel to that payee still open (top it up instead), passes over closing and\nclosed ones, and never redeploys an address it has used (its state is kept under --channels).\n"+amountHelp, true)
	payee := m.fs.String("payee", "", "payee's wallet address (required)")
	payeeKey := m.fs.String("payee-key", "", "payee's Ed25519 public key, 64 hex digits (required)")
	var deposit uint64
	m.fs.Var(amountFlag{&deposit}, "deposit", "AMOUNT to lock in the channel (required)")
	delay := m.fs.Duration("close-delay", time.Hour, "how long the payee may still claim after a close starts (whole seconds)")
	dir := m.fs.String("channels", defaultDir("channels"), "directory of the payer's channel state")
	vkey := voucherKeyFlag(m)
	if _, err := m.parse(args, 0, 0); err != nil {
		return err
	}
	if *payee == "" || *payeeKey == "" || deposit == 0 {
		m.fs.Usage()
		return fmt.Errorf("--payee, --payee-key and --deposit are required")
	}
	to, err := chain.ParseAddress(*payee)
	if err != nil {
		return err
	}
	pk, err := hex.DecodeString(*payeeKey)
	if err != nil || len(pk) != ed25519.PublicKeySize {
		return fmt.Errorf("--payee-key %q: want 64 hex digits", *payeeKey)
	}
	w, err := m.startWallet(ctx)
	defer m.stop()
	if err != nil {
		return err
	}
	vk, err := identity.Ed25519(m.voucherKeyPath(*vkey))
	if err != nil {
		return err
	}
	payer, opened, err := payments.OpenOrResume(m.ctx, w, contracts.ChannelConfig{Payer: w.Address(), Payee: to,
		PayerKey: vk.Public().(ed25519.PublicKey), PayeeKey: pk, CloseDelay: *delay}, vk, *dir, deposit)
	if err != nil {
		return err
	}
	addr := payer.Address()
	payer.Close()
	_, out, err := m.readChannel(addr)
	if err != nil {
		return err
	}
	done := fmt.Sprintf("opened channel %s\ndeposit %s TON from %s to %s; vouchers signed by %s\n",
		out.Address, nanoton.Format(out.Deposit), out.Payer, out.Payee, m.voucherKeyPath(*vkey))
	if !opened {
		done = fmt.Sprintf("channel %s to this payee is open already (deposit %s TON): top it up with 'cocoon channel top-up'\n",
			out.Address, nanoton.Format(out.Deposit))
	}
	return m.print(struct {
		channelJSON
		VoucherKey string `json:"voucher_key_file"`
		Opened     bool   `json:"opened"`
	}{out, m.voucherKeyPath(*vkey), opened}, done)
}

// channelOp parses ADDR (pos[0]), opens the chain, and reads the channel and the wallet of --key, which
// must be its payer (payer true) or payee.
func (m *moneyCmd) channelOp(ctx context.Context, pos string, payer bool) (*address.Address, *contracts.ChannelState, *chain.Wallet, error) {
	addr, err := m.startAt(ctx, pos, chain.ParseAddress)
	if err != nil {
		return nil, nil, nil, err
	}
	w, err := m.wallet()
	if err != nil {
		return nil, nil, nil, err
	}
	st, _, err := m.readChannel(addr)
	if err != nil {
		return nil, nil, nil, err
	}
	role, want := "payee", st.Payee
	if payer {
		role, want = "payer", st.Payer
	}
	if !want.Equals(w.Address()) {
		return nil, nil, nil, fmt.Errorf("wallet %s is not the %s of channel %s (the %s is %s)", m.addr(w.Address()), role, m.addr(addr), role, m.addr(want))
	}
	return addr, st, w, nil
}

// report prints the channel's state after an operation.
func (m *moneyCmd) report(addr *address.Address, done string) error {
	_, out, err := m.readChannel(addr)
	if err != nil {
		return err
	}
	return m.print(struct {
		channelJSON
		Done string `json:"done"`
	}{out, done}, done+"\n"+out.human())
}

func runChannelTopUp(ctx context.Context, args []string) error {
	m := newMoneyCmd("channel top-up ADDR AMOUNT", "Adds AMOUNT to the deposit of channel ADDR, from its payer's wallet (--key); the message\ncarries 0.01 TON more for gas and the channel's storage reserve.\n"+amountHelp, true)
	pos, err := m.parse(args, 2, 2)
	if err != nil {
		return err
	}
	amount, err := nanoton.Parse(pos[1])
	if err != nil {
		return err
	}
	addr, st, w, err := m.channelOp(ctx, pos[0], true)
	defer m.stop()
	if err != nil {
		return err
	}
	if _, err := payments.TopUp(m.ctx, w, st.Config(), amount); err != nil {
		return err
	}
	return m.report(addr, fmt.Sprintf("topped up %s TON", nanoton.Format(amount)))
}

func runChannelShow(ctx context.Context, args []string) error {
	m := newMoneyCmd("channel show ADDR", "Prints the payer, payee, deposit, claimed amount, newest claimed seqno and state of channel ADDR.", false)
	pos, err := m.parse(args, 1, 1)
	if err != nil {
		return err
	}
	addr, err := m.startAt(ctx, pos[0], chain.ParseAddress)
	defer m.stop()
	if err != nil {
		return err
	}
	_, out, err := m.readChannel(addr)
	if err != nil {
		return err
	}
	return m.print(out, out.human())
}

func runChannelVoucher(ctx context.Context, args []string) error {
	m := newMoneyCmd("channel voucher ADDR", "Signs a voucher promising the payee of channel ADDR --total in all, with --seqno above every\nvoucher before it, and prints it in base64 (what 'channel claim' takes).\n"+amountHelp, true)
	vkey := voucherKeyFlag(m)
	seqno := m.fs.Uint64("seqno", 0, "voucher seqno, above the last (required)")
	var total uint64
	m.fs.Var(amountFlag{&total}, "total", "AMOUNT the payee may have taken out of the channel in all (required)")
	pos, err := m.parse(args, 1, 1)
	if err != nil {
		return err
	}
	if *seqno == 0 {
		return fmt.Errorf("--seqno is required")
	}
	addr, err := m.startAt(ctx, pos[0], chain.ParseAddress)
	defer m.stop()
	if err != nil {
		return err
	}
	st, _, err := m.readChannel(addr)
	if err != nil {
		return err
	}
	vk, err := identity.LoadWalletKey(m.voucherKeyPath(*vkey))
	if err != nil {
		return err
	}
	if !vk.Public().(ed25519.PublicKey).Equal(st.PayerKey) {
		return fmt.Errorf("%s is not the voucher key of channel %s", m.voucherKeyPath(*vkey), m.addr(addr))
	}
	sv := contracts.Voucher{ChannelID: [32]byte(addr.Data()), Seqno: *seqno, Total: total}.Sign(vk)
	text, _ := sv.MarshalText()
	return m.print(struct {
		Channel string `json:"channel"`
		Seqno   uint64 `json:"seqno"`
		Total   uint64 `json:"total"`
		Voucher string `json:"voucher"`
	}{m.addr(addr), sv.Seqno, sv.Total, string(text)}, string(text)+"\n")
}

func runChannelClaim(ctx context.Context, args []string) error {
	m := newMoneyCmd("channel claim ADDR VOUCHER", "Claims from channel ADDR with VOUCHER, a payer-signed voucher in base64, from the payee's\nwallet (--key): the channel pays the voucher's total less what it has paid already. The contract\nrefuses stale, replayed and forged vouchers.", true)
	pos, err := m.parse(args, 2, 2)
	if err != nil {
		return err
	}
	var sv contracts.SignedVoucher
	if err := sv.UnmarshalText([]byte(pos[1])); err != nil {
		return fmt.Errorf("voucher: %w", err)
	}
	addr, st, w, err := m.channelOp(ctx, pos[0], false)
	defer m.stop()
	if err != nil {
		return err
	}
	if _, err := payments.ClaimWith(m.ctx, w, st.Config(), sv); err != nil {
		return fmt.Errorf("claim with voucher seqno %d, total %s TON: %w", sv.Seqno, nanoton.Format(sv.Total), err)
	}
	paid := uint64(0)
	if sv.Total > st.Claimed {
		paid = sv.Total - st.Claimed
	}
	return m.report(addr, fmt.Sprintf("claimed %s TON (voucher seqno %d, total %s TON)", nanoton.Format(paid), sv.Seqno, nanoton.Format(sv.Total)))
}

func runChannelClose(ctx context.Context, args []string) error {
	m := newMoneyCmd("channel close ADDR", "Starts closing channel ADDR from its payer's wallet (--key): the payee may still claim during\nthe close delay. With --finish, after the delay, ends it and sends the payer everything left.", true)
	finish := m.fs.Bool("finish", false, "finish a close whose delay has passed")
	pos, err := m.parse(args, 1, 1)
	if err != nil {
		return err
	}
	addr, st, w, err := m.channelOp(ctx, pos[0], true)
	defer m.stop()
	if err != nil {
		return err
	}
	if !*finish {
		if _, err := payments.StartClose(m.ctx, w, st.Config()); err != nil {
			return err
		}
		return m.report(addr, "close started")
	}
	acc, err := m.chain.Account(m.ctx, addr)
	if err != nil {
		return err
	}
	if _, err := payments.FinishClose(m.ctx, w, st.Config()); err != nil {
		return err
	}
	return m.report(addr, fmt.Sprintf("closed: the channel's %s TON (%s unclaimed, the rest reserve) went back to the payer",
		nanoton.Format(acc.Balance), nanoton.Format(st.Locked())))
}
