package collateral_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"time"

	"github.com/cocoon-go/cocoon/attest/collateral"
)

// A Getter fetches a URL once and then serves it from its cache directory,
// here after the server has gone away.
func ExampleNew() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("collateral"))
	}))
	dir, _ := os.MkdirTemp("", "collateral")
	defer os.RemoveAll(dir)

	g, err := collateral.New(dir, collateral.Options{Client: srv.Client(), MaxAge: time.Hour})
	if err != nil {
		panic(err)
	}
	first, _ := g.Get(srv.URL + "/crl")
	srv.Close()
	again, err := g.Get(srv.URL + "/crl")
	fmt.Printf("%s %s %v\n", first.Body, again.Body, err)
	// Output: collateral collateral <nil>
}
