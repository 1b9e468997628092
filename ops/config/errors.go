package config

import "errors"

// Sentinel errors. Errors returned by this package wrap them; match them with
// errors.Is. The error text always names the file, line and key where known.
var (
	// ErrSyntax marks a config file that is not valid TOML.
	ErrSyntax = errors.New("invalid TOML")
	// ErrUnknownKey marks a key or section that HakuRiver does not know.
	ErrUnknownKey = errors.New("unknown key")
	// ErrWrongType marks a value whose TOML type does not fit its key.
	ErrWrongType = errors.New("wrong type")
	// ErrInvalid marks a value of the right type that Validate rejects.
	ErrInvalid = errors.New("invalid value")
	// ErrEmptyToken marks a cluster_token_file that holds no token.
	ErrEmptyToken = errors.New("token file is empty")
)

// keyError is one rejected value: the full key and why.
type keyError struct {
	key string
	msg string
}

func (e keyError) Error() string { return e.key + ": " + e.msg }

// Unwrap lets errors.Is(err, ErrInvalid) match every validation error.
func (e keyError) Unwrap() error { return ErrInvalid }
