package sshproxy

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/crypto/ssh"
)

// HostKeyFile is the file name of the jump host's key in a host's data
// directory.
const HostKeyFile = "ssh_host_ed25519_key"

// LoadOrCreateHostKey returns the ed25519 host key stored at path in
// OpenSSH format, generating and writing it (mode 0600) the first time.
// Concurrent first calls on the same path end up with the same key: the
// file is published with a hard link, which never replaces an existing one.
func LoadOrCreateHostKey(path string) (ssh.Signer, error) {
	if s, err := readHostKey(path); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return s, err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate ssh host key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "hakuriver ssh proxy")
	if err != nil {
		return nil, fmt.Errorf("encode ssh host key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create ssh host key directory: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return nil, fmt.Errorf("write ssh host key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(pem.EncodeToMemory(block)); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write ssh host key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("sync ssh host key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("write ssh host key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("publish ssh host key: %w", err)
	}
	return readHostKey(path)
}

func readHostKey(path string) (ssh.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read ssh host key: %w", err)
	}
	s, err := ssh.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("parse ssh host key %s: %w", path, err)
	}
	return s, nil
}
