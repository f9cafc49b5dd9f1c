package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tvm/cell"

	"github.com/cocoon-go/cocoon/chain"
	"github.com/cocoon-go/cocoon/internal/serve"
)

// The HTTP protocol of a served local chain: JSON bodies, cells as base64 BoC, addresses in raw form
// ("0:<hex>"). Errors are a non-2xx status with {"error", "code"} where code is one of the error codes
// below, so that a Client returns the same sentinel errors as the Chain.
const (
	// MaxRequestBytes bounds a request body; a TON external message is at most 64 KiB.
	MaxRequestBytes = 1 << 20
	// MaxWait bounds one wait request; a Client waiting longer asks again.
	MaxWait = 30 * time.Second
	// MaxTransactions bounds one page of history.
	MaxTransactions = 1000

	codeBadRequest = "bad_request"
	codeRejected   = "rejected"
	codeNotActive  = "not_active"
	codeExit       = "exit_code"
	codeClosed     = "closed"
	codeInternal   = "internal"
)

type infoResponse struct {
	Chain    string `json:"chain"`
	Note     string `json:"note"`
	GlobalID int32  `json:"global_id"`
	Now      int64  `json:"now"`
}

type accountResponse struct {
	Account  []byte `json:"account"` // BoC of the TL-B Account
	LastLT   uint64 `json:"last_lt"`
	LastHash []byte `json:"last_hash,omitempty"`
}

type getMethodRequest struct {
	Address string `json:"address"`
	Method  string `json:"method"`
	Stack   []byte `json:"stack"` // BoC of a VmStack (chain.MarshalStack)
}

type getMethodResponse struct {
	Stack []byte `json:"stack"`
}

type sendRequest struct {
	Message []byte `json:"message"` // BoC of a Message
}

type fundRequest struct {
	Address string `json:"address"`
	Amount  uint64 `json:"amount"`
}

type txResponse struct {
	Transaction []byte `json:"transaction"`
}

type txsResponse struct {
	Transactions [][]byte `json:"transactions"`
}

type errorResponse struct {
	Error    string `json:"error"`
	Code     string `json:"code"`
	ExitCode int64  `json:"exit_code,omitempty"`
}

// Serve serves c over HTTP on ln until ln fails, so that other processes can share it with Dial.
func Serve(ln net.Listener, c *Chain) error {
	lim := serve.DefaultLimits()
	srv := serve.Server(Handler(c), lim, c.log)
	c.log.Info("serving the local chain", "addr", ln.Addr().String())
	return srv.Serve(serve.Limit(ln, lim))
}

// Handler is the HTTP handler Serve uses, to mount the chain in another server.
func Handler(c *Chain) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/info", func(w http.ResponseWriter, r *http.Request) {
		now, _ := c.Now(r.Context())
		reply(w, infoResponse{Chain: Name, Note: Note, GlobalID: GlobalID, Now: now.Unix()})
	})
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		reply(w, c.Status())
	})
	mux.HandleFunc("GET /v1/account", func(w http.ResponseWriter, r *http.Request) {
		addr, err := parseAddr(r.URL.Query().Get("address"))
		if err != nil {
			fail(w, err)
			return
		}
		a, lt, hash, err := c.accountCell(addr)
		if err != nil {
			fail(w, err)
			return
		}
		reply(w, accountResponse{Account: a.ToBOC(), LastLT: lt, LastHash: hash})
	})
	mux.HandleFunc("POST /v1/get-method", func(w http.ResponseWriter, r *http.Request) {
		addr, method, args, err := decodeGetMethod(r.Body)
		if err != nil {
			fail(w, err)
			return
		}
		res, err := c.runGetMethod(addr, method, args)
		if err != nil {
			fail(w, err)
			return
		}
		sc, err := chain.MarshalStack(res)
		if err != nil {
			fail(w, err)
			return
		}
		reply(w, getMethodResponse{Stack: sc.ToBOC()})
	})
	mux.HandleFunc("POST /v1/send", func(w http.ResponseWriter, r *http.Request) {
		msg, err := decodeSend(r.Body)
		if err != nil {
			fail(w, err)
			return
		}
		if err := c.SendExternal(r.Context(), msg); err != nil {
			fail(w, err)
			return
		}
		reply(w, struct{}{})
	})
	mux.HandleFunc("POST /v1/fund", func(w http.ResponseWriter, r *http.Request) {
		var req fundRequest
		if err := decodeJSON(r.Body, &req); err != nil {
			fail(w, err)
			return
		}
		addr, err := parseAddr(req.Address)
		if err == nil && req.Amount == 0 {
			err = badRequest(errors.New("fund: zero amount"))
		}
		if err != nil {
			fail(w, err)
			return
		}
		tx, err := c.Fund(r.Context(), addr, req.Amount)
		if err != nil {
			fail(w, err)
			return
		}
		reply(w, txResponse{Transaction: tx.Cell.ToBOC()})
	})
	mux.HandleFunc("GET /v1/wait", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		addr, err := parseAddr(q.Get("address"))
		if err != nil {
			fail(w, err)
			return
		}
		after, err1 := strconv.ParseUint(q.Get("after_lt"), 10, 64)
		ms, err2 := strconv.ParseInt(q.Get("timeout_ms"), 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			fail(w, badRequest(err))
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), min(time.Duration(ms)*time.Millisecond, MaxWait))
		defer cancel()
		tx, err := c.WaitTransaction(ctx, addr, after)
		if errors.Is(err, context.DeadlineExceeded) {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if err != nil {
			fail(w, err)
			return
		}
		reply(w, txResponse{Transaction: tx.Cell.ToBOC()})
	})
	mux.HandleFunc("GET /v1/transactions", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		addr, err := parseAddr(q.Get("address"))
		if err != nil {
			fail(w, err)
			return
		}
		before, err1 := strconv.ParseUint(q.Get("before_lt"), 10, 64)
		limit, err2 := strconv.Atoi(q.Get("limit"))
		if err := errors.Join(err1, err2); err != nil {
			fail(w, badRequest(err))
			return
		}
		txs, err := c.Transactions(r.Context(), addr, before, min(limit, MaxTransactions))
		if err != nil {
			fail(w, err)
			return
		}
		resp := txsResponse{Transactions: [][]byte{}}
		for _, tx := range txs {
			resp.Transactions = append(resp.Transactions, tx.Cell.ToBOC())
		}
		reply(w, resp)
	})
	return mux
}

// accountCell is what Account is made of, for the wire.
func (c *Chain) accountCell(addr *address.Address) (*cell.Cell, uint64, []byte, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return nil, 0, nil, ErrClosed
	}
	a := c.accounts[addr.StringRaw()]
	if a == nil {
		return emptyAccount, 0, nil, nil
	}
	sa := a.prep.ShardAccount()
	return sa.Account, a.state.LastLT, a.state.LastHash, nil
}

// requestError is a request the server refuses before it reaches the chain.
type requestError struct{ err error }

func (e *requestError) Error() string { return e.err.Error() }
func (e *requestError) Unwrap() error { return e.err }

func badRequest(err error) error { return &requestError{err} }

func decodeJSON(r io.Reader, v any) error {
	dec := json.NewDecoder(io.LimitReader(r, MaxRequestBytes+1))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest(fmt.Errorf("request body: %w", err))
	}
	return nil
}

// parseBOC parses a BoC from a peer: bounded, and never panicking whatever the bytes.
func parseBOC(b []byte) (c *cell.Cell, err error) {
	if len(b) == 0 || len(b) > MaxRequestBytes {
		return nil, badRequest(fmt.Errorf("BoC of %d bytes", len(b)))
	}
	defer func() {
		if r := recover(); r != nil {
			c, err = nil, badRequest(fmt.Errorf("malformed BoC: %v", r))
		}
	}()
	if c, err = cell.FromBOC(b); err != nil {
		return nil, badRequest(fmt.Errorf("BoC: %w", err))
	}
	return c, nil
}

func parseAddr(s string) (*address.Address, error) {
	addr, err := address.ParseRawAddr(s)
	if err != nil {
		if addr, err = address.ParseAddr(s); err != nil {
			return nil, badRequest(fmt.Errorf("address %q: %w", s, err))
		}
	}
	return addr, nil
}

// decodeSend decodes a send request body into the external message.
func decodeSend(r io.Reader) (*cell.Cell, error) {
	var req sendRequest
	if err := decodeJSON(r, &req); err != nil {
		return nil, err
	}
	return parseBOC(req.Message)
}

// decodeGetMethod decodes a get-method request body.
func decodeGetMethod(r io.Reader) (*address.Address, string, []any, error) {
	var req getMethodRequest
	if err := decodeJSON(r, &req); err != nil {
		return nil, "", nil, err
	}
	addr, err := parseAddr(req.Address)
	if err != nil {
		return nil, "", nil, err
	}
	if req.Method == "" || len(req.Method) > 128 {
		return nil, "", nil, badRequest(fmt.Errorf("method name of %d bytes", len(req.Method)))
	}
	sc, err := parseBOC(req.Stack)
	if err != nil {
		return nil, "", nil, err
	}
	args, err := chain.UnmarshalStack(sc)
	if err != nil {
		return nil, "", nil, badRequest(err)
	}
	return addr, req.Method, args, nil
}

func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, err error) {
	resp := errorResponse{Error: err.Error(), Code: codeInternal}
	status := http.StatusInternalServerError
	var exit *chain.ExitError
	var req *requestError
	switch {
	case errors.As(err, &req):
		resp.Code, status = codeBadRequest, http.StatusBadRequest
	case errors.Is(err, chain.ErrRejected):
		resp.Code, status = codeRejected, http.StatusUnprocessableEntity
	case errors.Is(err, chain.ErrNotActive):
		resp.Code, status = codeNotActive, http.StatusUnprocessableEntity
	case errors.As(err, &exit):
		resp.Code, resp.ExitCode, status = codeExit, exit.Code, http.StatusUnprocessableEntity
	case errors.Is(err, ErrClosed):
		resp.Code, status = codeClosed, http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(resp)
}
