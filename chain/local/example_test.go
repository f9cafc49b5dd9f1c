package local_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/xssnick/tonutils-go/address"

	"github.com/cocoon-go/cocoon/chain/local"
)

// One process owns a local chain and serves it; another dials it and uses it like the chain itself.
func ExampleServe() {
	dir, _ := os.MkdirTemp("", "local-example")
	defer os.RemoveAll(dir)
	c, err := local.Open(dir, &local.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go local.Serve(ln, c)

	// In another process:
	cl, err := local.Dial("http://" + ln.Addr().String())
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	addr := address.MustParseRawAddr("0:0000000000000000000000000000000000000000000000000000000000000001")
	if _, err := cl.Fund(ctx, addr, 3_000_000_000); err != nil {
		panic(err)
	}
	acc, _ := cl.Account(ctx, addr)
	st, _ := cl.Status(ctx)
	fmt.Println(cl.Name(), acc.Status, acc.Balance, st.Supply.Conserved())
	// Output: local UNINIT 3000000000 true
}
