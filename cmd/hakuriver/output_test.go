package main

import (
	"strings"
	"testing"
	"time"
)

func TestFormatSize(t *testing.T) {
	tests := []struct {
		in   int64
		want string
	}{
		{0, "0"}, {-1, "0"}, {512, "512B"}, {1 << 10, "1K"}, {1536, "1.5K"},
		{1288490189, "1.2G"}, {16 << 30, "16G"}, {10 << 20, "10M"}, {5 << 40, "5T"},
	}
	for _, tt := range tests {
		if got := formatSize(tt.in); got != tt.want {
			t.Errorf("formatSize(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestFormatAge(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		ago  time.Duration
		want string
	}{
		{-time.Second, "0s ago"}, {3 * time.Second, "3s ago"}, {125 * time.Second, "2m ago"},
		{5 * time.Hour, "5h ago"}, {72 * time.Hour, "3d ago"},
	}
	for _, tt := range tests {
		if got := formatAge(now.Add(-tt.ago), now); got != tt.want {
			t.Errorf("formatAge(-%s) = %q, want %q", tt.ago, got, tt.want)
		}
	}
	bad := "yesterday"
	if got := formatAgeRFC3339(&bad, now); got != "yesterday" {
		t.Errorf("unparsable = %q", got)
	}
	if got := formatAgeRFC3339(nil, now); got != "-" {
		t.Errorf("nil = %q", got)
	}
}

func TestProcessExitCode(t *testing.T) {
	for in, want := range map[int]int{1: 1, 3: 3, 255: 255, 256: 1, 0: 1, -1: 1, -2: 130, -9: 137, -15: 143, -1000: 1} {
		if got := processExitCode(in); got != want {
			t.Errorf("processExitCode(%d) = %d, want %d", in, got, want)
		}
	}
}

// TestOutputCSVOnlyWhereListed: -o csv on a command without a csv form is
// refused saying which commands have one, before any call.
func TestOutputCSVOnlyWhereListed(t *testing.T) {
	f := newFakeHost(t)
	_, _, err := runCLI(t, "--host", f.srv.URL, "-o", "csv", "node", "list")
	if err == nil || !strings.Contains(err.Error(), `invalid --output "csv"`) || !strings.Contains(err.Error(), "task list and usage") {
		t.Fatalf("node list -o csv: %v", err)
	}
	if _, _, err := runCLI(t, "--host", f.srv.URL, "-o", "yaml", "node", "list"); err == nil || !strings.Contains(err.Error(), "want table or json") {
		t.Fatalf("node list -o yaml: %v", err)
	}
}
