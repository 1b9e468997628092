package api_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
)

// TestStreamUpgradeAndHalfClose: a stream opened with DialStream reaches
// AcceptStream with the token; bytes written right after the request are
// not lost; a half-close passes through Pipe and the answer still comes
// back; a refusal is an *APIError with its status.
func TestStreamUpgradeAndHalfClose(t *testing.T) {
	// The "task": answers "got <n> bytes" once its input ends.
	target, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	go func() {
		for {
			c, err := target.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				n, _ := io.Copy(io.Discard, c)
				io.WriteString(c, "got "+strings.Repeat("x", int(n%7))+" bytes")
			}()
		}
	}()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(api.TokenHeader) != "tok" {
			api.WriteError(w, http.StatusForbidden, "forbidden: no token")
			return
		}
		if !api.IsStreamRequest(r) {
			api.WriteError(w, http.StatusBadRequest, "want an upgrade")
			return
		}
		d, err := net.Dial("tcp", target.Addr().String())
		if err != nil {
			api.WriteError(w, http.StatusBadGateway, err.Error())
			return
		}
		c, err := api.AcceptStream(w)
		if err != nil {
			d.Close()
			return
		}
		api.Pipe(c, d)
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	_, err = api.StreamDialer{Token: "wrong"}.DialStream(ctx, srv.URL, "/x")
	if api.StatusCode(err) != http.StatusForbidden || !strings.Contains(err.Error(), "forbidden: no token") {
		t.Fatalf("wrong token: %v, want an HTTP 403 APIError", err)
	}
	conn, err := api.StreamDialer{Token: "tok"}.DialStream(ctx, srv.URL, "/x")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, "hello"); err != nil {
		t.Fatal(err)
	}
	if err := conn.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(conn)
	if err != nil || string(b) != "got xxxxx bytes" {
		t.Fatalf("answer %q, %v; want the task's answer after the half-close", b, err)
	}
}
