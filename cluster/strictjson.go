package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// maxJSONDepth bounds the nesting of a strictly decoded body.
const maxJSONDepth = 32

// readBody reads r's body up to limit bytes; a larger one is a 413 naming
// the limit, answered without reading the rest when Content-Length
// announces it.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, tooLargeBody(limit)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, tooLargeBody(limit)
	case err != nil:
		return nil, badRequest("request body: read: %v", err)
	}
	return body, nil
}

func tooLargeBody(limit int64) error {
	return &httpError{status: http.StatusRequestEntityTooLarge, msg: "request body: larger than the limit of " + strconv.FormatInt(limit, 10) + " bytes"}
}

// decodeStrict decodes body, which must hold exactly one JSON value, into v
// (a pointer to a struct). Beyond encoding/json it rejects, each with a 400
// naming the field: a key given twice in any object (encoding/json keeps the
// last one silently), a struct key that is not one of the struct's JSON
// field names spelled exactly (encoding/json would ignore it or match it
// ignoring case), nesting deeper than maxJSONDepth and trailing data.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber() // the walk only looks at keys: leave numbers unparsed
	kw := keyWalker{dec: dec}
	if err := kw.value(reflect.TypeOf(v), "", 0); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("malformed JSON: trailing data after the object")
	}
	// The walk proved the syntax and the keys; decode for the values.
	vd := json.NewDecoder(bytes.NewReader(body))
	vd.DisallowUnknownFields()
	if err := vd.Decode(v); err != nil {
		return jsonError(err)
	}
	return nil
}

// jsonError turns an encoding/json error into a 400 naming the field.
func jsonError(err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &te):
		return badRequest("field %q: expected %s, got JSON %s", te.Field, te.Type, te.Value)
	case errors.As(err, &se):
		return badRequest("malformed JSON at byte %d: %v", se.Offset, se)
	case errors.As(err, &mbe):
		return badRequest("request body larger than %d bytes", mbe.Limit)
	case errors.Is(err, io.EOF):
		return badRequest("empty request body: a JSON object is required")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("malformed JSON: unexpected end of the body")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return badRequest("field %s: unknown field", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return badRequest("malformed JSON: %v", err)
}

// keyWalker checks the keys of a JSON value token by token, following the
// Go type the value will be decoded into where it knows it.
type keyWalker struct {
	dec *json.Decoder
}

// value walks one value that decodes into t (nil: unknown, only duplicate
// keys are checked) at path.
func (kw *keyWalker) value(t reflect.Type, path string, depth int) error {
	tok, err := kw.dec.Token()
	if err != nil {
		if depth > 0 {
			return unexpectedEnd(err)
		}
		return jsonError(err) // io.EOF here: an empty body
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil // a scalar: decoding checks its type
	}
	if depth >= maxJSONDepth {
		return badRequest("field %q: nested more than %d levels deep", path, maxJSONDepth)
	}
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t != nil && reflect.PointerTo(t).Implements(reflect.TypeFor[json.Unmarshaler]()) {
		t = nil // decodes itself: only duplicate keys are ours to check
	}
	if d == '[' {
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; kw.dec.More(); i++ {
			if err := kw.value(elem, path+"["+strconv.Itoa(i)+"]", depth+1); err != nil {
				return err
			}
		}
		return kw.end()
	}
	var fields map[string]reflect.Type
	var elem reflect.Type
	if t != nil {
		switch t.Kind() {
		case reflect.Struct:
			fields = map[string]reflect.Type{}
			jsonFields(t, fields)
		case reflect.Map:
			elem = t.Elem()
		}
	}
	seen := map[string]struct{}{}
	for kw.dec.More() {
		tok, err := kw.dec.Token()
		if err != nil {
			return unexpectedEnd(err)
		}
		key, _ := tok.(string)
		fp := key
		if path != "" {
			fp = path + "." + key
		}
		if _, dup := seen[key]; dup {
			return badRequest("field %q: given twice (duplicate key)", fp)
		}
		seen[key] = struct{}{}
		vt := elem
		if fields != nil {
			ft, ok := fields[key]
			if !ok {
				return unknownField(fp, key, fields)
			}
			vt = ft
		}
		if err := kw.value(vt, fp, depth+1); err != nil {
			return err
		}
	}
	return kw.end()
}

// end reads the closing delimiter of an object or array.
func (kw *keyWalker) end() error {
	if _, err := kw.dec.Token(); err != nil {
		return unexpectedEnd(err)
	}
	return nil
}

// unexpectedEnd is jsonError for an error inside a value, where the end of
// the body is not an empty body but a truncated one.
func unexpectedEnd(err error) error {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return jsonError(err)
}

// jsonFields adds t's JSON field names and types to out, as encoding/json
// names them (tag name or Go name, "-" skipped, untagged embedded structs
// flattened).
func jsonFields(t reflect.Type, out map[string]reflect.Type) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		ft := f.Type
		if f.Anonymous && name == "" {
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				jsonFields(ft, out)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if _, ok := out[name]; !ok { // the shallower field wins, as in encoding/json
			out[name] = ft
		}
	}
}

// unknownField is the 400 for a key that is no field of the struct,
// suggesting the closest field name.
func unknownField(path, key string, fields map[string]reflect.Type) error {
	best, bestD := "", 3
	for name := range fields {
		if strings.EqualFold(name, key) {
			best = name
			break
		}
		if d := editDistance(name, key); d < bestD || d == bestD && best != "" && name < best {
			best, bestD = name, d
		}
	}
	if best != "" {
		return badRequest("field %q: unknown field (did you mean %q?)", path, best)
	}
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	sort.Strings(names)
	return badRequest("field %q: unknown field (known fields: %s)", path, strings.Join(names, ", "))
}

// editDistance is the Levenshtein distance of short ASCII names.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
