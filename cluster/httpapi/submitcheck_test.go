package httpapi

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"testing"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
)

// TestSubmitFieldsListed keeps the explicit list of accepted submit fields
// (api.SubmitFields, the original's and ours) equal to what the strict
// decoder accepts, the JSON names of api.SubmitRequest.
func TestSubmitFieldsListed(t *testing.T) {
	var got []string
	for _, f := range jsonFields(reflect.TypeFor[api.SubmitRequest](), nil) {
		got = append(got, f.name)
	}
	want := api.SubmitFields()
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("SubmitRequest fields %v, SubmitFields() %v", got, want)
	}
	for _, f := range api.OriginalSubmitFields() {
		if !slices.Contains(got, f) {
			t.Errorf("original field %q is not accepted", f)
		}
	}
}

// BenchmarkDecodeSubmit compares the strict decoding and checks of a
// typical submit with encoding/json alone (the old path).
func BenchmarkDecodeSubmit(b *testing.B) {
	body := []byte(`{"command":"python","arguments":["train.py","--lr","0.1","--epochs","10"],"env_vars":{"OMP_NUM_THREADS":"4","RUN":"a1"},` +
		`"required_cores":4,"required_memory_bytes":8000000000,"container_name":"NULL","request_id":"KQ3LZ5GX7VNWQ2RZ6YB4HTCJMA"}`)
	b.Run("strict", func(b *testing.B) {
		for b.Loop() {
			var req api.SubmitRequest
			if err := decodeStrict(body, &req); err != nil {
				b.Fatal(err)
			}
			if err := validateSubmit(&req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			var req api.SubmitRequest
			if err := json.NewDecoder(bytes.NewReader(body)).Decode(&req); err != nil {
				b.Fatal(err)
			}
		}
	})
}
