package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/cocoon-go/cocoon/nanoton"
	"github.com/cocoon-go/cocoon/node"
)

func runStatus(ctx context.Context, args []string) error {
	fs, _ := newFlags("status", "Prints the state of a `cocoon up` network read from its chain: accounts and their\nbalances, payment channels with their deposits, claims and newest vouchers. Amounts in nanoTON.")
	dir := fs.String("data-dir", defaultDir("up"), "data directory of the network")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	st, err := node.ReadStatus(ctx, *dir)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	fmt.Printf("chain:  %s (%s)\nroot:   %s\n\naccounts:\n", st.Chain, st.Note, st.Root)
	for _, a := range st.Accounts {
		fmt.Printf("  %-10s %-7s %s  %s TON\n", a.Name, a.Role, a.Address, nanoton.Format(a.Balance))
	}
	fmt.Println("\nchannels:")
	if len(st.Channels) == 0 {
		fmt.Println("  none")
	}
	for _, c := range st.Channels {
		fmt.Printf("  %s → %s  %s  deposit %s  claimed %s  newest voucher %s  (%s)\n",
			c.Payer, c.Payee, c.Address, nanoton.Format(c.Deposit), nanoton.Format(c.Claimed), nanoton.Format(c.VoucherTotal), c.State)
		if !c.ClosableAt.IsZero() {
			fmt.Printf("    the payer may finish closing at %s\n", c.ClosableAt.Format(time.RFC3339))
		}
		if c.ClaimError != "" {
			fmt.Printf("    CLAIM FAILING: %s\n", c.ClaimError)
		}
	}
	return nil
}
