package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
)

// referenceDupCheck is the straightforward check the key scanner must agree
// with: a walk with encoding/json's Decoder.Token that reports whether any
// object holds a key twice (keys compared after unescaping) and the deepest
// nesting (in containers).
func referenceDupCheck(data []byte) (dup bool, depth int, err error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var walk func(d int) error
	walk = func(d int) error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		if _, ok := tok.(json.Delim); ok {
			depth = max(depth, d+1)
		}
		switch tok {
		case json.Delim('['):
			for dec.More() {
				if err := walk(d + 1); err != nil {
					return err
				}
			}
			_, err = dec.Token()
			return err
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return err
				}
				if seen[k.(string)] {
					dup = true
				}
				seen[k.(string)] = true
				if err := walk(d + 1); err != nil {
					return err
				}
			}
			_, err = dec.Token()
			return err
		}
		return nil
	}
	if err := walk(0); err != nil {
		return false, 0, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return false, 0, errors.New("trailing data")
	}
	return dup, depth, nil
}

// FuzzDecodeStrict checks that decodeStrict never panics and, decoding into
// a map (no field names to check), accepts exactly the valid JSON objects
// without duplicate keys, nested at most maxJSONDepth deep (null, which
// encoding/json accepts into a map, is no object).
func FuzzDecodeStrict(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"a":1,"a":2}`, `{"a":{"b":1,"b":2}}`, `{"a":[{"x":1},{"x":1,"x":2}]}`, `{"\u0061":1,"a":2}`,
		`{"a":"\"}","a\\":1}`, `{"a" : [ 1 , "x" , null , true , {"b" : -1.5e3} ] }`, `{"a":1} x`, `{"a":1`,
		`{"a":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`, `{"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15,"k16":16,"k17":17,"k1":0}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var m map[string]any
		err := decodeStrict(data, &m)
		dup, depth, rerr := referenceDupCheck(data)
		var probe map[string]any
		object := bytes.HasPrefix(bytes.TrimLeft(data, " \t\n\r"), []byte("{"))
		want := rerr == nil && json.Unmarshal(data, &probe) == nil && !dup && depth <= maxJSONDepth && object
		if (err == nil) != want {
			t.Fatalf("decodeStrict(%q) = %v; reference: dup %v, depth %d, err %v", data, err, dup, depth, rerr)
		}
	})
}

// TestDecodeStrict covers what the submit table cannot reach: nested
// structs, escaped keys and the depth limit.
func TestDecodeStrict(t *testing.T) {
	type inner struct {
		Name string `json:"name"`
	}
	type outer struct {
		Items []inner          `json:"items"`
		Any   any              `json:"any"`
		Raw   json.RawMessage  `json:"raw"`
		Env   map[string]inner `json:"env"`
	}
	deep := `{"any":` + strings.Repeat("[", maxJSONDepth) + strings.Repeat("]", maxJSONDepth) + `}`
	for _, tc := range []struct {
		body string
		want string // "" = accepted
	}{
		{`{"items":[{"name":"a"},{"name":"b"}],"any":{"x":[1,{"y":2}]},"raw":{"k":1},"env":{"A":{"name":"x"}}}`, ""},
		{`{"items":[{"name":"a"},{"nmae":"b"}]}`, `"items[1].nmae": unknown field (did you mean "name"?)`},
		{`{"items":[{"Name":"a"}]}`, `"items[0].Name": unknown field`},
		{`{"env":{"A":{"name":"x","name":"y"}}}`, `"env.A.name": given twice`},
		{`{"any":{"x":1,"x":2}}`, `"any.x": given twice`},
		{`{"raw":{"k":1,"k":2}}`, `"raw.k": given twice`},
		{`{"items":[],"i\u0074ems":[]}`, `"items": given twice`},
		{`{"\u006eame":1}`, `"name": unknown field`},
		{deep, "nested more than"},
		{`{"any":` + strings.Repeat("[", maxJSONDepth-1) + strings.Repeat("]", maxJSONDepth-1) + `}`, ""},
		{`{"items":[]}  `, ""},
		{`{"items":[]} {}`, "trailing"},
		{` null `, "a JSON object is required"},
	} {
		var v outer
		err := decodeStrict([]byte(tc.body), &v)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("decodeStrict(%s): %v", tc.body, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("decodeStrict(%s) = %v, want an error with %q", tc.body, err, tc.want)
		}
	}
}
