package api_test

import (
	"reflect"
	"testing"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
)

func TestParseMemory(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  bool
	}{
		{"1024", 1024, false},
		{"512M", 512e6, false},
		{"4g", 4e9, false},
		{"4G", 4e9, false},
		{"2k", 2000, false},
		{"2Ki", 2048, false},
		{"1mi", 1 << 20, false},
		{"3Gi", 3 << 30, false},
		{"", 0, true},
		{"G", 0, true},
		{"4X", 0, true},
		{"4GB", 0, true},
		{"-1", 0, true},
		{"1.5G", 0, true},
		{"99999999999999999999", 0, true},
		{"9999999999999G", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := api.ParseMemory(tt.in)
			if (err != nil) != tt.err || got != tt.want {
				t.Fatalf("ParseMemory(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.err)
			}
		})
	}
}

func TestParseTarget(t *testing.T) {
	tests := []struct {
		in   string
		host string
		gpus []int
		err  bool
	}{
		{"node1", "node1", nil, false},
		{"node1:0", "node1:0", nil, false},
		{"node1::0,1", "node1", []int{0, 1}, false},
		{"node1:1::2,,3", "node1:1", []int{2, 3}, false},
		{"node1::", "node1", []int{}, false},
		{"node1::a", "", nil, true},
		{"node1::-1", "", nil, true},
		{"node1:x", "", nil, true},
		{"::0", "", nil, true},
		{"", "", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			host, gpus, err := api.ParseTarget(tt.in)
			if (err != nil) != tt.err {
				t.Fatalf("err = %v, want error %v", err, tt.err)
			}
			if host != tt.host || !reflect.DeepEqual(gpus, tt.gpus) {
				t.Fatalf("got %q %v", host, gpus)
			}
		})
	}
}

func TestParseTimeLimit(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  bool
	}{
		{"0", 0, false},
		{"90", 90, false},
		{" 3600 ", 3600, false},
		{"90m", 5400, false},
		{"2h", 7200, false},
		{"1h30m15s", 5415, false},
		{"1500ms", 2, false},
		{"1ns", 1, false},
		{"0s", 0, false},
		{"-1", 0, true},
		{"-1s", 0, true},
		{"2d", 0, true},
		{"1.5", 0, true},
		{"", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := api.ParseTimeLimit(tt.in)
			if (err != nil) != tt.err || got != tt.want {
				t.Fatalf("ParseTimeLimit(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.err)
			}
		})
	}
}

func TestCheckArray(t *testing.T) {
	tests := []struct {
		in   string
		want string
		err  bool
	}{
		{"0-99", "0-99", false},
		{"0-99%8", "0-99%8", false},
		{"1,3,5", "1,3,5", false},
		{" 0-3, 8 %2", "0-3,8%2", false},
		{"7", "7", false},
		{"5-5", "5-5", false},
		{"", "", true},
		{"%2", "", true},
		{"0-99%", "", true},
		{"0-99%-1", "", true},
		{"1,,3", "", true},
		{"-3", "", true},
		{"3-1", "", true},
		{"0-1-2", "", true},
		{"x", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := api.CheckArray(tt.in)
			if (err != nil) != tt.err || got != tt.want {
				t.Fatalf("CheckArray(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.err)
			}
		})
	}
}
