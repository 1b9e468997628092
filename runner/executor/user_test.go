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

// TestTaskUser: a task without a RunAs never falls back to root (the
// runner's own user or a Docker image's user) unless root is allowed for
// it: runner_user when it is not root, else nobody (65534:65534).
func TestTaskUser(t *testing.T) {
	for _, tc := range []struct {
		runAs, runnerUser string
		native, allowRoot bool
		want              string
	}{
		// An owner's unix_user wins, whatever the rest.
		{"4242:4242", "", true, false, "4242:4242"},
		{"4242:4242", "nobody", false, false, "4242:4242"},
		{"0", "", true, true, "0"},
		// Root allowed: as before accounts existed.
		{"", "", true, true, ""},
		{"", "nobody", true, true, "nobody"},
		{"", "nobody", false, true, ""},
		// Root not allowed: runner_user unless it is root, else nobody.
		{"", "", true, false, Nobody},
		{"", "", false, false, Nobody},
		{"", "nobody", true, false, "nobody"},
		{"", "nobody", false, false, "nobody"},
		{"", "4242:4243", false, false, "4242:4243"},
		{"", "root", true, false, Nobody},
		{"", "0", false, false, Nobody},
		{"", "4242:0", true, false, Nobody},
		{"", "0:4242", true, false, Nobody},
	} {
		got, err := TaskUser(tc.runAs, tc.runnerUser, tc.native, tc.allowRoot)
		if err != nil || got != tc.want {
			t.Errorf("TaskUser(%q, %q, native %v, allowRoot %v) = %q, %v; want %q", tc.runAs, tc.runnerUser, tc.native, tc.allowRoot, got, err, tc.want)
		}
	}
	if _, err := TaskUser("", "no-such-user-hk", true, false); err == nil {
		t.Error("TaskUser with an unknown runner_user: no error")
	}
}
