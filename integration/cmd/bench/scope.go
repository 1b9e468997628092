//go:build integration

package main

import (
	"fmt"
	"os"
	"sync"

	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// scope implements harness.TB for one part of the bench: it owns the
// cleanups (processes, temp dirs) registered during that part, runs them at
// close, and on Fatalf closes itself and every enclosing scope and exits.
type scope struct {
	name   string
	parent *scope

	mu       sync.Mutex
	cleanups []func()
	failed   bool
	closed   bool
}

var _ harness.TB = (*scope)(nil)

func newScope(name string) *scope { return &scope{name: name} }

// child returns a scope nested in s.
func (s *scope) child(name string) *scope { return &scope{name: s.name + "/" + name, parent: s} }

func (s *scope) Helper() {}

func (s *scope) Logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%s] %s\n", s.name, fmt.Sprintf(format, args...))
}

// Fatalf reports the failure, runs the cleanups of s and its parents, and
// exits with status 1.
func (s *scope) Fatalf(format string, args ...any) {
	s.mu.Lock()
	s.failed = true
	s.mu.Unlock()
	fmt.Fprintf(os.Stderr, "[%s] FATAL: %s\n", s.name, fmt.Sprintf(format, args...))
	for p := s; p != nil; p = p.parent {
		p.close()
	}
	os.Exit(1)
}

func (s *scope) Cleanup(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cleanups = append(s.cleanups, f)
}

func (s *scope) TempDir() string {
	dir, err := os.MkdirTemp("", "hakuriver-bench-")
	if err != nil {
		s.Fatalf("temp dir: %v", err)
	}
	s.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			s.Logf("remove %s: %v", dir, err)
		}
	})
	return dir
}

func (s *scope) Failed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

// close runs the cleanups, last registered first, once.
func (s *scope) close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	fs := s.cleanups
	s.cleanups = nil
	s.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}
