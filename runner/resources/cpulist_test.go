package resources

import (
	"slices"
	"testing"
)

func TestParseCPUList(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []int
		wantErr bool
	}{
		{name: "mixed", in: "0-3,8,10-11", want: []int{0, 1, 2, 3, 8, 10, 11}},
		{name: "single", in: "5", want: []int{5}},
		{name: "sysfs newline", in: "0-1\n", want: []int{0, 1}},
		{name: "one-wide range", in: "4-4", want: []int{4}},
		{name: "unsorted and overlapping", in: "8,2-4,3", want: []int{2, 3, 4, 8}},
		{name: "spaces", in: " 0 , 2-3 ", want: []int{0, 2, 3}},
		{name: "empty (memory-only node)", in: "", want: []int{}},
		{name: "blank", in: " \n", want: []int{}},
		{name: "reversed range", in: "3-1", wantErr: true},
		{name: "empty element", in: "1,,2", wantErr: true},
		{name: "trailing comma", in: "1,", wantErr: true},
		{name: "open range", in: "1-", wantErr: true},
		{name: "negative", in: "-1", wantErr: true},
		{name: "not a number", in: "a-b", wantErr: true},
		{name: "stride syntax", in: "0-7:2", wantErr: true},
		{name: "too large", in: "0-99999999", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseCPUList(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("ParseCPUList(%q) = %v, want error", tc.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseCPUList(%q): %v", tc.in, err)
			}
			if got == nil || !slices.Equal(got, tc.want) {
				t.Errorf("ParseCPUList(%q) = %#v, want %#v", tc.in, got, tc.want)
			}
		})
	}
}

func TestFormatCPUList(t *testing.T) {
	tests := []struct {
		name string
		in   []int
		want string
	}{
		{name: "ranges", in: []int{0, 1, 2, 3, 8, 10, 11}, want: "0-3,8,10-11"},
		{name: "unsorted with duplicates", in: []int{11, 3, 10, 3, 2}, want: "2-3,10-11"},
		{name: "single", in: []int{7}, want: "7"},
		{name: "empty", in: nil, want: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := slices.Clone(tc.in)
			if got := FormatCPUList(in); got != tc.want {
				t.Errorf("FormatCPUList(%v) = %q, want %q", tc.in, got, tc.want)
			}
			if !slices.Equal(in, tc.in) {
				t.Errorf("FormatCPUList modified its argument: %v, was %v", in, tc.in)
			}
			back, err := ParseCPUList(tc.want)
			if err != nil {
				t.Fatalf("ParseCPUList(%q): %v", tc.want, err)
			}
			if want := slices.Compact(slices.Sorted(slices.Values(tc.in))); !slices.Equal(back, want) {
				t.Errorf("round trip of %v gave %v", tc.in, back)
			}
		})
	}
}
