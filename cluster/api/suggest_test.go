package api

import "testing"

func TestClosest(t *testing.T) {
	known := []string{"required_cores", "required_gpus", "command", "arguments"}
	tests := []struct {
		name, want string
		ok         bool
	}{
		{"requierd_cores", "required_cores", true},
		{"COMMAND", "command", true},
		{"argument", "arguments", true},
		{"required_gpu", "required_gpus", true},
		{"memory", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		if got, ok := Closest(tt.name, known); got != tt.want || ok != tt.ok {
			t.Errorf("Closest(%q) = %q, %v; want %q, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
	if d := editDistance("kitten", "sitting"); d != 3 {
		t.Errorf("editDistance(kitten, sitting) = %d, want 3", d)
	}
}
