package local

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tvm/cell"

	"github.com/cocoon-go/cocoon/chain"
)

// maxResponseBytes bounds what a Client reads from a server (a page of history can be large).
const maxResponseBytes = 256 << 20

// Client is a local chain served by another process (see Serve). It implements chain.Chain and
// chain.Faucet, with the same errors as Chain.
type Client struct {
	base     string
	hc       *http.Client
	globalID int32
}

// Dial connects to the local chain served at url (for example "http://127.0.0.1:8710") and checks that
// it is one.
func Dial(url string) (*Client, error) {
	c := &Client{base: strings.TrimRight(url, "/"), hc: &http.Client{}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var info infoResponse
	if err := c.do(ctx, http.MethodGet, "/v1/info", nil, &info); err != nil {
		return nil, fmt.Errorf("local: dial %s: %w", url, err)
	}
	if info.Chain != Name {
		return nil, fmt.Errorf("local: dial %s: serves chain %q, not a local chain", url, info.Chain)
	}
	c.globalID = info.GlobalID
	return c, nil
}

// Name returns "local".
func (c *Client) Name() string { return Name }

// GlobalID returns the served chain's global id.
func (c *Client) GlobalID() int32 { return c.globalID }

// Now returns the served chain's time.
func (c *Client) Now(ctx context.Context) (time.Time, error) {
	var info infoResponse
	if err := c.do(ctx, http.MethodGet, "/v1/info", nil, &info); err != nil {
		return time.Time{}, err
	}
	return time.Unix(info.Now, 0), nil
}

// Status returns the served chain's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	err := c.do(ctx, http.MethodGet, "/v1/status", nil, &st)
	return st, err
}

// Account returns the state of addr.
func (c *Client) Account(ctx context.Context, addr *address.Address) (*chain.Account, error) {
	var resp accountResponse
	if err := c.do(ctx, http.MethodGet, "/v1/account?"+url.Values{"address": {addr.StringRaw()}}.Encode(), nil, &resp); err != nil {
		return nil, err
	}
	ac, err := cell.FromBOC(resp.Account)
	if err != nil {
		return nil, fmt.Errorf("local: account %s: %w", addr.StringRaw(), err)
	}
	return chain.ParseAccount(addr, ac, resp.LastLT, resp.LastHash)
}

// RunGetMethod runs a get-method on the served chain.
func (c *Client) RunGetMethod(ctx context.Context, addr *address.Address, method string, args ...any) ([]any, error) {
	sc, err := chain.MarshalStack(args)
	if err != nil {
		return nil, err
	}
	var resp getMethodResponse
	req := getMethodRequest{Address: addr.StringRaw(), Method: method, Stack: sc.ToBOC()}
	if err := c.do(ctx, http.MethodPost, "/v1/get-method", req, &resp); err != nil {
		var exit *chain.ExitError
		if errors.As(err, &exit) {
			exit.Method = method
		}
		return nil, err
	}
	rc, err := cell.FromBOC(resp.Stack)
	if err != nil {
		return nil, fmt.Errorf("local: get-method %s result: %w", method, err)
	}
	return chain.UnmarshalStack(rc)
}

// SendExternal sends an external message to the served chain, which applies it before answering.
func (c *Client) SendExternal(ctx context.Context, msg *cell.Cell) error {
	return c.do(ctx, http.MethodPost, "/v1/send", sendRequest{Message: msg.ToBOC()}, nil)
}

// Fund credits addr from the served chain's faucet.
func (c *Client) Fund(ctx context.Context, addr *address.Address, amount uint64) (*chain.Transaction, error) {
	var resp txResponse
	if err := c.do(ctx, http.MethodPost, "/v1/fund", fundRequest{Address: addr.StringRaw(), Amount: amount}, &resp); err != nil {
		return nil, err
	}
	return parseTx(addr, resp.Transaction)
}

// WaitTransaction waits for the first transaction of addr after afterLT, asking the server again every
// MaxWait until ctx is done.
func (c *Client) WaitTransaction(ctx context.Context, addr *address.Address, afterLT uint64) (*chain.Transaction, error) {
	for {
		wait := MaxWait
		if d, ok := ctx.Deadline(); ok {
			wait = min(wait, time.Until(d))
		}
		q := url.Values{
			"address":    {addr.StringRaw()},
			"after_lt":   {strconv.FormatUint(afterLT, 10)},
			"timeout_ms": {strconv.FormatInt(max(wait.Milliseconds(), 1), 10)},
		}
		var resp txResponse
		if err := c.do(ctx, http.MethodGet, "/v1/wait?"+q.Encode(), nil, &resp); err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("local: wait for a transaction of %s after lt %d: %w", addr.StringRaw(), afterLT, ctx.Err())
			}
			return nil, err
		}
		if resp.Transaction != nil {
			return parseTx(addr, resp.Transaction)
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("local: wait for a transaction of %s after lt %d: %w", addr.StringRaw(), afterLT, err)
		}
	}
}

// Transactions returns history of addr from the served chain, newest first.
func (c *Client) Transactions(ctx context.Context, addr *address.Address, beforeLT uint64, limit int) ([]*chain.Transaction, error) {
	q := url.Values{
		"address":   {addr.StringRaw()},
		"before_lt": {strconv.FormatUint(beforeLT, 10)},
		"limit":     {strconv.Itoa(limit)},
	}
	var resp txsResponse
	if err := c.do(ctx, http.MethodGet, "/v1/transactions?"+q.Encode(), nil, &resp); err != nil {
		return nil, err
	}
	txs := make([]*chain.Transaction, 0, len(resp.Transactions))
	for _, b := range resp.Transactions {
		tx, err := parseTx(addr, b)
		if err != nil {
			return nil, err
		}
		txs = append(txs, tx)
	}
	return txs, nil
}

func parseTx(addr *address.Address, b []byte) (*chain.Transaction, error) {
	tc, err := cell.FromBOC(b)
	if err != nil {
		return nil, fmt.Errorf("local: transaction of %s: %w", addr.StringRaw(), err)
	}
	return chain.ParseTransaction(addr.Workchain(), tc)
}

// do sends one request and decodes the answer into out (nil: discard). A 204 leaves out untouched.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("local: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("local: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return fmt.Errorf("local: %s %s: %w", method, path, err)
	}
	if resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if resp.StatusCode/100 != 2 {
		var e errorResponse
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			return fmt.Errorf("local: %s %s: %s", method, path, resp.Status)
		}
		return remoteError(e)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("local: %s %s: %w", method, path, err)
	}
	return nil
}

// remoteError turns an error answer back into the error the Chain returned.
func remoteError(e errorResponse) error {
	msg := errors.New("local: server: " + e.Error)
	switch e.Code {
	case codeRejected:
		return fmt.Errorf("%w (%w)", chain.ErrRejected, msg)
	case codeNotActive:
		return fmt.Errorf("%w (%w)", chain.ErrNotActive, msg)
	case codeClosed:
		return fmt.Errorf("%w (%w)", ErrClosed, msg)
	case codeExit:
		return &chain.ExitError{Code: e.ExitCode}
	}
	return msg
}
