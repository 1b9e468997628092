package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestSignVerify(t *testing.T) {
	secret, body := []byte("s3cret"), []byte(`{"task_id":"1"}`)
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	if got := Sign(secret, body); got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
	// Known answer (RFC 4231-style check against an independent value).
	if got := Sign([]byte("key"), []byte("The quick brown fox jumps over the lazy dog")); got != "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8" {
		t.Fatalf("known answer: %s", got)
	}
	if !Verify(secret, body, want) {
		t.Fatal("Verify refused a good signature")
	}
	for _, bad := range []string{"", want[:len(want)-1] + "0", "sha1=" + want[7:], Sign([]byte("other"), body)} {
		if bad != want && Verify(secret, body, bad) {
			t.Fatalf("Verify accepted %q", bad)
		}
	}
	if Verify(secret, append(body, ' '), want) {
		t.Fatal("Verify accepted a changed body")
	}
}

func TestBackoff(t *testing.T) {
	base, max := time.Second, time.Minute
	want := []time.Duration{time.Second, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second, time.Minute, time.Minute}
	for n, w := range want {
		if got := Backoff(n, base, max); got != w {
			t.Errorf("Backoff(%d) = %v, want %v", n, got, w)
		}
	}
	// Never overflows into a negative or zero wait.
	for _, n := range []int{62, 63, 64, 1000, 1 << 30} {
		if got := Backoff(n, base, max); got != max {
			t.Errorf("Backoff(%d) = %v, want the cap", n, got)
		}
	}
}

func TestCheckURLAndAllowed(t *testing.T) {
	for _, u := range []string{"http://127.0.0.1:9/x", "https://hooks.lab/a?b=c"} {
		if err := CheckURL(u); err != nil {
			t.Errorf("CheckURL(%q): %v", u, err)
		}
	}
	for _, u := range []string{"", "ftp://h/x", "file:///etc/passwd", "http://", "https://u:p@h/x", "/relative", "http://h/a b", "http://h/hooks/../admin", "http://h/hooks/%2E%2e/admin", "http://h/./x", "http://h\\@evil/"} {
		if CheckURL(u) == nil {
			t.Errorf("CheckURL(%q) accepted", u)
		}
	}
	allow := []string{"https://hooks.lab", "http://10.0.0.5:9000/ci/"}
	for u, want := range map[string]bool{
		"https://hooks.lab/a":              true,
		"https://hooks.lab":                true,
		"https://hooks.lab.evil.example/x": false,
		"https://hooks.lab:444/x":          false,
		"http://10.0.0.5:9000/ci/job":      true,
		"http://10.0.0.5:9000/admin":       false,
		"http://hooks.lab/a":               false,
	} {
		if got := Allowed(u, allow); got != want {
			t.Errorf("Allowed(%q) = %v, want %v", u, got, want)
		}
	}
	if Allowed("https://x/", nil) {
		t.Error("an empty allow list allowed a URL")
	}
}

func TestSend(t *testing.T) {
	secret := []byte("k")
	codes := []int{500, 204}
	var gotKey, gotSig string
	var gotBody []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotKey, gotSig = r.Header.Get(DeliveryHeader), r.Header.Get(SignatureHeader)
		gotBody, _ = io.ReadAll(r.Body)
		w.WriteHeader(codes[0])
		codes = codes[1:]
	}))
	defer srv.Close()
	s := &Sender{Client: srv.Client(), Secret: secret, Timeout: 5 * time.Second}
	err := s.Send(context.Background(), srv.URL, "1-1-completed", []byte(`{}`))
	var se *StatusError
	if !errors.As(err, &se) || se.Code != 500 {
		t.Fatalf("first send: %v, want HTTP 500", err)
	}
	if err := s.Send(context.Background(), srv.URL, "1-1-completed", []byte(`{}`)); err != nil {
		t.Fatalf("second send: %v", err)
	}
	if gotKey != "1-1-completed" || !Verify(secret, gotBody, gotSig) {
		t.Fatalf("key %q, signature %q over %q", gotKey, gotSig, gotBody)
	}
}
