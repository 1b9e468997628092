package runner

import (
	"slices"
	"testing"

	"github.com/hakuriver/hakuriver-ha/gossip"
)

// TestHostOrder: the leader's API first, the other replicas sorted, then
// the configured hosts; runners and members without an API are left out.
func TestHostOrder(t *testing.T) {
	host := func(name, api string) gossip.Member {
		return gossip.Member{Name: name, Meta: gossip.Meta{Role: gossip.RoleHost, API: api}}
	}
	members := []gossip.Member{
		host("h3", "http://c:8000"),
		{Name: "r1", Meta: gossip.Meta{Role: gossip.RoleRunner, API: "http://r:8001"}},
		host("h1", "http://a:8000"),
		host("h2", "http://b:8000"),
		host("h4", ""),
	}
	for _, c := range []struct {
		leader string
		want   []string
	}{
		{"", []string{"http://a:8000", "http://b:8000", "http://c:8000", "http://cfg:8000"}},
		{"h2", []string{"http://b:8000", "http://a:8000", "http://c:8000", "http://cfg:8000"}},
		{"h3", []string{"http://c:8000", "http://a:8000", "http://b:8000", "http://cfg:8000"}},
		{"r1", []string{"http://a:8000", "http://b:8000", "http://c:8000", "http://cfg:8000"}}, // not a host
		{"gone", []string{"http://a:8000", "http://b:8000", "http://c:8000", "http://cfg:8000"}},
	} {
		if got := hostOrder(members, c.leader, []string{"http://cfg:8000"}); !slices.Equal(got, c.want) {
			t.Errorf("leader %q: %v, want %v", c.leader, got, c.want)
		}
	}
}
