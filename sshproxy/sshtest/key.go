package sshtest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"os"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// Key is a fresh ed25519 key pair for a test user or host. It is immutable
// and safe for concurrent use.
type Key struct {
	// Signer signs with the private key (for ssh.PublicKeys or AddHostKey).
	Signer ssh.Signer
	// Private is the raw private key.
	Private ed25519.PrivateKey
}

// NewKey generates a key pair; it ends the test when generation fails.
func NewKey(tb testing.TB) *Key {
	tb.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatalf("generate ed25519 key: %v", err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		tb.Fatalf("ssh signer from key: %v", err)
	}
	return &Key{Signer: s, Private: priv}
}

// PublicKey returns the public half.
func (k *Key) PublicKey() ssh.PublicKey { return k.Signer.PublicKey() }

// AuthorizedKey returns the public key as one authorized_keys line without
// a trailing newline, followed by " comment" unless comment is empty.
func (k *Key) AuthorizedKey(comment string) string {
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k.Signer.PublicKey())))
	if comment != "" {
		line += " " + comment
	}
	return line
}

// WriteFile writes the private key in OpenSSH format, mode 0600, to a new
// file in dir (for the ssh binary's -i) and returns its path. Each call
// writes a new file.
func (k *Key) WriteFile(tb testing.TB, dir string) string {
	tb.Helper()
	block, err := ssh.MarshalPrivateKey(k.Private, "sshtest")
	if err != nil {
		tb.Fatalf("marshal private key: %v", err)
	}
	f, err := os.CreateTemp(dir, "id_ed25519_*")
	if err != nil {
		tb.Fatalf("create key file: %v", err)
	}
	_, werr := f.Write(pem.EncodeToMemory(block))
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		tb.Fatalf("write key file %s: %v", f.Name(), werr)
	}
	return f.Name()
}
