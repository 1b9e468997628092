package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
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
// ignoring case), nesting deeper than maxJSONDepth, trailing data, and a
// body that is not an object (null would decode to the zero struct).
//
// encoding/json decodes first, so that syntax and type errors are its own;
// then one scan of the (now known valid) bytes checks the keys.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	ks := keyScanner{data: body}
	if err := dec.Decode(v); err != nil {
		if strings.HasPrefix(err.Error(), "json: unknown field ") {
			// Valid JSON: the scan names the field with its path and
			// suggests the one meant.
			if serr := ks.value(reflect.TypeOf(v), "", 0); serr != nil {
				return serr
			}
		}
		return jsonError(err)
	}
	if first := bytes.TrimLeft(body, " \t\n\r"); first[0] != '{' {
		// Only null decodes into a struct without an error: a body of
		// null is no request.
		return badRequest("request body: a JSON object is required, got %.8q", first)
	}
	if err := ks.value(reflect.TypeOf(v), "", 0); err != nil {
		return err
	}
	// The decoder knows where its value ended; the scanner does not for a
	// top-level scalar ("nullu" is null and a trailing "u" to it).
	rest := body[dec.InputOffset():]
	if len(bytes.TrimLeft(rest, " \t\n\r")) != 0 {
		return badRequest("malformed JSON: trailing data after the object")
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

// keyScanner checks the keys of a JSON value that encoding/json has already
// decoded (so its syntax is valid), following the Go type the value was
// decoded into where it knows it. It allocates only for field tables and
// error messages.
type keyScanner struct {
	data []byte
	pos  int
}

func (ks *keyScanner) skipSpace() {
	for ks.pos < len(ks.data) {
		switch ks.data[ks.pos] {
		case ' ', '\t', '\n', '\r':
			ks.pos++
		default:
			return
		}
	}
}

// str skips the string at pos and returns its raw contents (between the
// quotes) and whether it holds escapes.
func (ks *keyScanner) str() (raw []byte, escaped bool) {
	start := ks.pos + 1
	for i := start; i < len(ks.data); i++ {
		switch ks.data[i] {
		case '\\':
			escaped = true
			i++
		case '"':
			ks.pos = i + 1
			return ks.data[start:i], escaped
		}
	}
	ks.pos = len(ks.data)
	return ks.data[start:], escaped
}

// key returns the object key at pos as encoding/json decodes it: unescaped,
// and with invalid UTF-8 replaced by U+FFFD (so "\xd8" and "\x89" are the
// same key given twice).
func (ks *keyScanner) key() string {
	start := ks.pos
	raw, escaped := ks.str()
	if !escaped && utf8.Valid(raw) {
		return string(raw)
	}
	var k string
	json.Unmarshal(ks.data[start:ks.pos], &k) //nolint:errcheck // valid JSON: decoded before
	return k
}

// value scans one value that decodes into t (nil: unknown, only duplicate
// keys are checked) at path.
func (ks *keyScanner) value(t reflect.Type, path string, depth int) error {
	ks.skipSpace()
	if ks.pos >= len(ks.data) {
		return badRequest("malformed JSON: unexpected end of the body")
	}
	switch ks.data[ks.pos] {
	case '"':
		ks.str()
		return nil
	case '{', '[':
	default: // a number, true, false or null
		for ks.pos < len(ks.data) {
			switch ks.data[ks.pos] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return nil
			}
			ks.pos++
		}
		return nil
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
	open := ks.data[ks.pos]
	ks.pos++
	if open == '[' {
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; ; i++ {
			ks.skipSpace()
			if ks.pos < len(ks.data) && ks.data[ks.pos] == ']' {
				ks.pos++
				return nil
			}
			ep := "" // a scalar needs no path: build it only for containers
			if ks.pos < len(ks.data) && (ks.data[ks.pos] == '{' || ks.data[ks.pos] == '[') {
				ep = path + "[" + strconv.Itoa(i) + "]"
			}
			if err := ks.value(elem, ep, depth+1); err != nil {
				return err
			}
			if err := ks.next(']'); err != nil || ks.data[ks.pos-1] == ']' {
				return err
			}
		}
	}
	var fields []jsonField
	var elem reflect.Type
	if t != nil {
		switch t.Kind() {
		case reflect.Struct:
			fields = jsonFields(t, make([]jsonField, 0, t.NumField()))
		case reflect.Map:
			elem = t.Elem()
		}
	}
	var seen keySet
	for {
		ks.skipSpace()
		if ks.pos >= len(ks.data) {
			return badRequest("malformed JSON: unexpected end of the body")
		}
		if ks.data[ks.pos] == '}' {
			ks.pos++
			return nil
		}
		key := ks.key()
		fp := func() string {
			if path == "" {
				return key
			}
			return path + "." + key
		}
		if !seen.add(key) {
			return badRequest("field %q: given twice (duplicate key)", fp())
		}
		vt := elem
		if fields != nil {
			i := slices.IndexFunc(fields, func(f jsonField) bool { return f.name == key })
			if i < 0 {
				return unknownField(fp(), key, fields)
			}
			vt = fields[i].typ
		}
		ks.skipSpace()
		ks.pos++ // the ':'
		ks.skipSpace()
		vp := ""
		if ks.pos < len(ks.data) && (ks.data[ks.pos] == '{' || ks.data[ks.pos] == '[') {
			vp = fp()
		}
		if err := ks.value(vt, vp, depth+1); err != nil {
			return err
		}
		if err := ks.next('}'); err != nil || ks.data[ks.pos-1] == '}' {
			return err
		}
	}
}

// keySet is the keys of one object so far: a list while it is small (most
// objects are), a map beyond.
type keySet struct {
	list []string
	m    map[string]struct{}
}

// add adds k and reports whether it was new.
func (s *keySet) add(k string) bool {
	if s.m != nil {
		if _, ok := s.m[k]; ok {
			return false
		}
		s.m[k] = struct{}{}
		return true
	}
	if slices.Contains(s.list, k) {
		return false
	}
	s.list = append(s.list, k)
	if len(s.list) > 16 {
		s.m = make(map[string]struct{}, 2*len(s.list))
		for _, x := range s.list {
			s.m[x] = struct{}{}
		}
		s.list = nil
	}
	return true
}

// next consumes the ',' after a member or element, or the closing delim.
func (ks *keyScanner) next(closing byte) error {
	ks.skipSpace()
	if ks.pos >= len(ks.data) || (ks.data[ks.pos] != ',' && ks.data[ks.pos] != closing) {
		return badRequest("malformed JSON at byte %d", ks.pos)
	}
	ks.pos++
	return nil
}

// jsonField is one JSON field name of a struct and its Go type.
type jsonField struct {
	name string
	typ  reflect.Type
}

// jsonFields appends t's JSON field names and types to out, as
// encoding/json names them (tag name or Go name, "-" skipped, untagged
// embedded structs flattened).
func jsonFields(t reflect.Type, out []jsonField) []jsonField {
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
				out = jsonFields(ft, out)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, jsonField{name: name, typ: ft})
	}
	return out
}

// unknownField is the 400 for a key that is no field of the struct,
// suggesting the closest field name.
func unknownField(path, key string, fields []jsonField) error {
	names := make([]string, 0, len(fields))
	for _, f := range fields {
		names = append(names, f.name)
	}
	if best, ok := api.Closest(key, names); ok {
		return badRequest("field %q: unknown field (did you mean %q?)", path, best)
	}
	sort.Strings(names)
	return badRequest("field %q: unknown field (known fields: %s)", path, strings.Join(names, ", "))
}
