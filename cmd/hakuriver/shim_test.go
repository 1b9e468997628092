package main

import "testing"

// TestShimArg: only the two forms the native executor runs skip cobra;
// everything else (help, flags, a missing or extra argument) goes through
// the command, which prints help or a usage error.
func TestShimArg(t *testing.T) {
	for _, tc := range []struct {
		args []string
		dir  string
		ok   bool
	}{
		{[]string{"hakuriver", "runner-shim", "/var/lib/hakuriver/tasks/7"}, "/var/lib/hakuriver/tasks/7", true},
		{[]string{"hakuriver", "runner-shim", "-"}, "-", true},
		{[]string{"hakuriver", "runner-shim", "--help"}, "", false},
		{[]string{"hakuriver", "runner-shim", "-h"}, "", false},
		{[]string{"hakuriver", "runner-shim"}, "", false},
		{[]string{"hakuriver", "runner-shim", "/a", "/b"}, "", false},
		{[]string{"hakuriver", "runner", "/a"}, "", false},
	} {
		dir, ok := shimArg(tc.args)
		if dir != tc.dir || ok != tc.ok {
			t.Errorf("shimArg(%q) = %q, %v; want %q, %v", tc.args, dir, ok, tc.dir, tc.ok)
		}
	}
}
