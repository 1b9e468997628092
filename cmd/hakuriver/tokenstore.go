package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// tokenStore is the file `hakuriver auth login` writes: one token per
// cluster, keyed by the first replica URL. Mode 0600 in a 0700 directory.
type tokenStore struct {
	Tokens map[string]string `json:"tokens"`
}

// tokenStorePath is $HAKURIVER_CREDENTIALS, else
// $XDG_CONFIG_HOME/hakuriver/tokens.json, else ~/.config/hakuriver/tokens.json.
func tokenStorePath() (string, error) {
	if p := os.Getenv(credentialsEnv); p != "" {
		return p, nil
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("find the config directory: %w", err)
	}
	return filepath.Join(dir, "hakuriver", "tokens.json"), nil
}

// clusterKey names a cluster in the store by its first replica URL.
func clusterKey(hosts []string) string {
	if len(hosts) == 0 {
		return defaultHost
	}
	h := strings.TrimSpace(strings.Split(hosts[0], ",")[0])
	if !strings.Contains(h, "://") {
		h = "http://" + h
	}
	return strings.TrimRight(h, "/")
}

func readTokenStore(path string) (tokenStore, error) {
	st := tokenStore{Tokens: map[string]string{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("read %s: %w", path, err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("read %s: %w", path, err)
	}
	if st.Tokens == nil {
		st.Tokens = map[string]string{}
	}
	return st, nil
}

// loadSavedToken returns the saved token of the cluster at hosts.
func loadSavedToken(hosts []string) (string, error) {
	path, err := tokenStorePath()
	if err != nil {
		return "", err
	}
	st, err := readTokenStore(path)
	if err != nil {
		return "", err
	}
	return st.Tokens[clusterKey(hosts)], nil
}

// saveToken stores token for the cluster at hosts ("" removes it), writing
// the file with mode 0600 through a temporary file and a rename.
func saveToken(hosts []string, token string) (string, error) {
	path, err := tokenStorePath()
	if err != nil {
		return "", err
	}
	st, err := readTokenStore(path)
	if err != nil {
		return "", err
	}
	if token == "" {
		delete(st.Tokens, clusterKey(hosts))
	} else {
		st.Tokens[clusterKey(hosts)] = token
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	b, _ := json.MarshalIndent(st, "", "  ")
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tokens-*")
	if err != nil {
		return "", fmt.Errorf("save token: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return "", fmt.Errorf("save token: %w", err)
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return "", fmt.Errorf("save token: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("save token: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("save token: %w", err)
	}
	return path, nil
}

// credentialsEnv names the file of saved account tokens (not to be
// confused with HAKURIVER_TOKEN_FILE, the cluster token's file).
const credentialsEnv = "HAKURIVER_CREDENTIALS"
