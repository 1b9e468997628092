package executor

import (
	"slices"
	"testing"
)

func TestLookupUser(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Identity
	}{
		{"4242:4243", Identity{Name: "4242", UID: 4242, GID: 4243, Home: "/"}},
		{"4242", Identity{Name: "4242", UID: 4242, GID: 4242, Home: "/"}},
		{"0:0", Identity{Name: "root", UID: 0, GID: 0, Home: "/root"}},
		{"nobody", Identity{Name: "nobody", UID: 65534, GID: 65534, Home: "/nonexistent"}},
		{"65534", Identity{Name: "nobody", UID: 65534, GID: 65534, Home: "/nonexistent"}},
	} {
		got, err := LookupUser(tc.in)
		if err != nil {
			t.Errorf("LookupUser(%q): %v", tc.in, err)
			continue
		}
		got.Groups = slices.DeleteFunc(got.Groups, func(g uint32) bool { return g == got.GID })
		if got.Name != tc.want.Name || got.UID != tc.want.UID || got.GID != tc.want.GID || got.Home != tc.want.Home || len(got.Groups) != 0 {
			t.Errorf("LookupUser(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
	for _, bad := range []string{"no-such-user-hk", "4242:x", "x:4242", "", "99999999999"} {
		if _, err := LookupUser(bad); err == nil {
			t.Errorf("LookupUser(%q): no error", bad)
		}
	}
}
