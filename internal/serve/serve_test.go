package serve

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cocoon-go/cocoon/api"
)

// start serves h with limits l on loopback and returns its address.
func start(t *testing.T, h http.Handler, l Limits) string {
	t.Helper()
	ln, err := Listen("127.0.0.1:0", l)
	if err != nil {
		t.Fatal(err)
	}
	srv := Server(h, l, slog.New(slog.DiscardHandler))
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// slowBody sends a POST whose body of size bytes trickles in one byte per
// tick, and returns how long it took until the server answered or hung up.
func slowBody(t *testing.T, addr string, size int, tick, giveUp time.Duration) time.Duration {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", size)
	go func() {
		for range size {
			if _, err := conn.Write([]byte("x")); err != nil {
				return
			}
			time.Sleep(tick)
		}
	}()
	conn.SetReadDeadline(time.Now().Add(giveUp))
	io.Copy(io.Discard, conn) // until the server hangs up
	return time.Since(start)
}

func TestSlowBodyIsCut(t *testing.T) {
	addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusRequestTimeout)
		}
	}), Limits{HeaderTimeout: time.Second, BodyTimeout: 300 * time.Millisecond})
	if took := slowBody(t, addr, 1000, 20*time.Millisecond, 5*time.Second); took > 2*time.Second {
		t.Errorf("a body trickling in one byte at a time held the server %v, past its 300ms body deadline", took)
	}
}

// TestLongAnswerOutlivesBodyDeadline: the body deadline is for the body;
// an answer that takes longer to come is neither cut nor cancelled.
func TestLongAnswerOutlivesBodyDeadline(t *testing.T) {
	addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		for range 10 {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
			fmt.Fprintln(w, "tick")
			w.(http.Flusher).Flush()
		}
	}), Limits{BodyTimeout: 100 * time.Millisecond, WriteTimeout: 100 * time.Millisecond})
	for _, body := range []string{"", "a short body"} {
		resp, err := http.Post("http://"+addr, "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || strings.Count(string(b), "tick") != 10 {
			t.Errorf("body %q: a 500ms answer with a 100ms body and write deadline: %q, %v", body, b, err)
		}
	}
}

// TestStalledReaderIsDropped: a peer that stops reading a stream is let go
// once a write waits past the write deadline.
func TestStalledReaderIsDropped(t *testing.T) {
	failed := make(chan error, 1)
	addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := make([]byte, 64<<10)
		for {
			if _, err := w.Write(chunk); err != nil {
				failed <- err
				return
			}
			w.(http.Flusher).Flush()
		}
	}), Limits{WriteTimeout: 200 * time.Millisecond})
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	bufio.NewReader(conn).ReadString('\n') // then read no more
	select {
	case err := <-failed:
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "timeout") {
			t.Logf("write ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a peer that stopped reading held its answer's writer for 10s, past its 200ms write deadline")
	}
}

func TestTooManyRequestsAre429(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	started := make(chan struct{}, 1)
	addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release
	}), Limits{MaxRequests: 1})
	go http.Get("http://" + addr)
	<-started
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + addr)
	if err != nil {
		t.Fatalf("a request over the limit was not answered: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	e := api.ParseError(resp.StatusCode, b)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || e.Code != "rate_limit_exceeded" {
		t.Errorf("a request over the limit: HTTP %d, Retry-After %q, %s", resp.StatusCode, resp.Header.Get("Retry-After"), b)
	}
}

func TestTooManyConnectionsWait(t *testing.T) {
	addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), Limits{MaxConns: 2})
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr, nil)
	if resp, err := http.DefaultTransport.(*http.Transport).Clone().RoundTrip(req); err == nil {
		resp.Body.Close()
		t.Fatal("a third connection was served while two were open, the most")
	}
	held[0].Close()
	resp, err := http.Get("http://" + addr)
	if err != nil {
		t.Fatalf("once a connection closed, another one was not served: %v", err)
	}
	resp.Body.Close()
}
