package sweep

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestExpand(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want [][]string
		err  string
	}{
		{"no args", nil, [][]string{{}}, ""},
		{"plain args", []string{"a", "b"}, [][]string{{"a", "b"}}, ""},
		{"range", []string{"span:{1..3}"}, [][]string{{"1"}, {"2"}, {"3"}}, ""},
		{"range with spaces", []string{"span:{ 2 .. 3 }"}, [][]string{{"2"}, {"3"}}, ""},
		{"negative range", []string{"span:{-1..1}"}, [][]string{{"-1"}, {"0"}, {"1"}}, ""},
		{"single value range", []string{"span:{5..5}"}, [][]string{{"5"}}, ""},
		{"reversed range is empty", []string{"x", "span:{3..1}"}, [][]string{}, ""},
		{"malformed integer", []string{"span:{1..b}"}, nil, `"span:{1..b}"`},
		{"braces without dots are a literal", []string{"span:{1-3}"}, [][]string{{"{1-3}"}}, ""},
		{"second dots", []string{"span:{1..2..3}"}, nil, "START..END"},
		{"three dots", []string{"span:{1...3}"}, nil, "START..END"},
		{"empty bounds", []string{"span:{..}"}, nil, "START..END"},
		{"python int syntax", []string{"span:{+1_0..011}"}, [][]string{{"10"}, {"11"}}, ""},
		{"double underscore", []string{"span:{1__0..11}"}, nil, "START..END"},
		{"double sign", []string{"span:{--1..1}"}, nil, "START..END"},
		{"content stripped", []string{"span:  [a,b] "}, [][]string{{"a"}, {"b"}}, ""},
		{"empty literal", []string{"span:"}, [][]string{{""}}, ""},
		{"literal stripped", []string{"span: hello "}, [][]string{{"hello"}}, ""},
		{"blank list is empty", []string{"span:[  ]"}, [][]string{}, ""},
		{"list stripped", []string{"span:[a, b ,c]"}, [][]string{{"a"}, {"b"}, {"c"}}, ""},
		{"empty list", []string{"span:[]", "x"}, [][]string{}, ""},
		{"no quoting", []string{`span:["a,b",c]`}, [][]string{{`"a`}, {`b"`}, {"c"}}, ""},
		{"empty item kept", []string{"span:[a,,b]"}, [][]string{{"a"}, {""}, {"b"}}, ""},
		{"literal span", []string{"span:hello"}, [][]string{{"hello"}}, ""},
		{"literal unclosed brace", []string{"span:{1..3"}, [][]string{{"{1..3"}}, ""},
		{"nested brackets are literal items", []string{"span:[[1,2],[3]]"}, [][]string{{"[1"}, {"2]"}, {"[3]"}}, ""},
		{"prefix is case-sensitive", []string{"SPAN:[a,b]"}, [][]string{{"SPAN:[a,b]"}}, ""},
		{"product first varies slowest", []string{"--lr", "span:[1e-3,1e-4]", "--seed", "span:{1..3}"}, [][]string{
			{"--lr", "1e-3", "--seed", "1"}, {"--lr", "1e-3", "--seed", "2"}, {"--lr", "1e-3", "--seed", "3"},
			{"--lr", "1e-4", "--seed", "1"}, {"--lr", "1e-4", "--seed", "2"}, {"--lr", "1e-4", "--seed", "3"},
		}, ""},
		{"three spans", []string{"span:[a,b]", "span:{0..1}", "span:[x,y]"}, [][]string{
			{"a", "0", "x"}, {"a", "0", "y"}, {"a", "1", "x"}, {"a", "1", "y"},
			{"b", "0", "x"}, {"b", "0", "y"}, {"b", "1", "x"}, {"b", "1", "y"},
		}, ""},
		{"too many", []string{"span:{1..1000}", "x", "span:{1..1000}"}, nil, `more than 100000 combinations (the limit): "span:{1..1000}" gives 1000, "span:{1..1000}" gives 1000`},
		{"too many but one span empty", []string{"span:{1..1000}", "span:{1..1000}", "span:[]"}, [][]string{}, ""},
		{"huge range", []string{"span:{0..9223372036854775807}"}, nil, "more than 100000 values"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Expand(c.args, 0)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("Expand(%q) error %v, want one containing %q", c.args, err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Expand(%q): %v", c.args, err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("Expand(%q) = %q, want %q", c.args, got, c.want)
			}
		})
	}
}

func TestExpandLimit(t *testing.T) {
	if _, err := Expand([]string{"span:{1..5}", "span:{1..2}"}, 9); !errors.Is(err, ErrTooMany) {
		t.Fatalf("10 combinations under a limit of 9: %v, want ErrTooMany", err)
	}
	if _, err := Expand([]string{"span:{1..b}"}, 9); err == nil || errors.Is(err, ErrTooMany) {
		t.Fatalf("a malformed span: %v, want an error other than ErrTooMany", err)
	}
	got, err := Expand([]string{"span:{1..5}", "span:{1..2}"}, 10)
	if err != nil || len(got) != 10 {
		t.Fatalf("10 combinations under a limit of 10: %d, %v", len(got), err)
	}
}
