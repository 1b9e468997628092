// Package auth authenticates callers of a host replica and decides what
// their role lets them do. Accounts and token hashes live in the replicated
// state (fsm); this package turns a request's credentials into a Principal
// with an in-memory lookup (one SHA-256 and two map reads, no bcrypt: the
// secrets are 256-bit random, so a fast hash is as strong as a slow one).
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// SecretPrefix starts every API token secret, so that a leaked one is easy
// to recognise (and to scan for).
const SecretPrefix = "hkr_"

// Hash returns the lower-case hex SHA-256 of a token secret: what the state
// keeps instead of the secret.
func Hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// NewToken makes a fresh 256-bit token secret for user and the record the
// state keeps of it. The secret must be shown once and then forgotten.
func NewToken(user, name string, now time.Time, ttl time.Duration) (secret string, rec *fsm.Token, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", nil, fmt.Errorf("new token: %w", err)
	}
	secret = SecretPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	h := Hash(secret)
	rec = &fsm.Token{ID: h[:16], User: user, Name: name, Hash: h, CreatedAt: now.UTC()}
	if ttl > 0 {
		exp := now.Add(ttl).UTC()
		rec.ExpiresAt = &exp
	}
	return secret, rec, nil
}

// TokenFromSecret is NewToken for a secret the caller chose (it must look
// like one: LooksLikeSecret), as `nomad acl bootstrap` accepts one, so that
// a bootstrap whose answer was lost can be retried without losing the
// secret.
func TokenFromSecret(user, name, secret string, now time.Time) (*fsm.Token, error) {
	if !LooksLikeSecret(secret) {
		return nil, fmt.Errorf("token: want %s followed by 43 base64url characters (256 random bits)", SecretPrefix)
	}
	h := Hash(secret)
	return &fsm.Token{ID: h[:16], User: user, Name: name, Hash: h, CreatedAt: now.UTC()}, nil
}

// LooksLikeSecret reports whether s has the shape of a token secret.
func LooksLikeSecret(s string) bool {
	return strings.HasPrefix(s, SecretPrefix) && len(s) == len(SecretPrefix)+43
}

// sessionNamePrefix starts the name of a token the dashboard's login made
// (SessionTokenName).
const sessionNamePrefix = "dashboard session of "

// SessionTTL is how long a dashboard session lasts at most (never longer
// than the token it was made from).
const SessionTTL = 12 * time.Hour

// SessionTokenName names the session token the dashboard's login makes
// from the token parentID: the session cookie holds that token's secret,
// never the one the user typed, so that signing out can revoke it.
func SessionTokenName(parentID string) string { return sessionNamePrefix + parentID }

// SessionParent returns the ID of the token a session token was made
// from; ok is false for a token that is not a session's. A session's name
// ends with a token ID (16 hex digits) and it always expires: a token an
// account named so itself before such names were reserved, without an
// expiry or with another ending, is no session.
func SessionParent(t fsm.Token) (parentID string, ok bool) {
	id, ok := strings.CutPrefix(t.Name, sessionNamePrefix)
	if !ok || t.ExpiresAt == nil || len(id) != 16 || strings.Trim(id, "0123456789abcdef") != "" {
		return "", false
	}
	return id, true
}

// SessionName reports whether name is one the dashboard's sessions use
// (reserved for them).
func SessionName(name string) bool { return strings.HasPrefix(name, sessionNamePrefix) }
