package api

import (
	"net/url"
	"slices"
	"strings"
	"testing"
)

func TestParseExecRequest(t *testing.T) {
	in := ExecRequest{Cmd: []string{"sh", "-c", "echo a b"}, TTY: true, Rows: 40, Cols: 100}
	got, err := ParseExecRequest(in.Query())
	if err != nil || !slices.Equal(got.Cmd, in.Cmd) || !got.TTY || got.Rows != 40 || got.Cols != 100 {
		t.Fatalf("round trip of %+v: %+v, %v", in, got, err)
	}
	if got, err := ParseExecRequest(url.Values{}); err != nil || len(got.Cmd) != 0 || got.TTY {
		t.Fatalf("empty query (the default shell, no tty): %+v, %v", got, err)
	}
	for _, c := range []struct {
		q     url.Values
		field string
	}{
		{url.Values{"tty": {"maybe"}}, "tty"},
		{url.Values{"rows": {"-1"}}, "rows"},
		{url.Values{"cols": {"x"}}, "cols"},
		{url.Values{"rows": {"100000"}}, "rows"},
		{url.Values{"cmd": {""}}, "cmd[0]"},
		{url.Values{"cmd": {"a\x00b"}}, "cmd[0]"},
		{url.Values{"cmd": make([]string, MaxExecArgs+1)}, "cmd"},
		{url.Values{"cmd": {strings.Repeat("x", MaxExecArgBytes+1)}}, "cmd"},
	} {
		_, err := ParseExecRequest(c.q)
		if err == nil || !strings.HasPrefix(err.Error(), c.field+":") {
			t.Errorf("query %v: error %v, want one naming %s", c.q, err, c.field)
		}
	}
}
