// Package sshtest provides SSH and TCP fixtures for tests, in the style of
// net/http/httptest: fresh ed25519 keys, a fake sshd standing in for a VPS,
// an echo listener standing in for a published port, and a client that runs
// one command over a connection.
//
// Only _test.go files import this package; the import-direction test in
// integration/layout fails when a production package does. Every fixture
// listens on 127.0.0.1:0 and is closed by tb.Cleanup; failures to set one up
// end the test with tb.Fatal.
package sshtest
