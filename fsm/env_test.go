//go:build !hakuriver_fsm_v7

package fsm_test

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

func TestSetEnvironmentCodec(t *testing.T) {
	for _, c := range []*fsm.SetEnvironment{
		{Name: "torch", Replica: "h1"},
		{Name: "torch", Deleted: true},
	} {
		data := encode(t, c)
		if fsm.CommandType(data[0]) != fsm.CmdSetEnvironment || fsm.CmdSetEnvironment != 8 {
			t.Fatalf("type byte %d, want 8", data[0])
		}
		if got := fsm.CmdSetEnvironment.String(); got != "set_environment" {
			t.Fatalf("String() = %q", got)
		}
		got, ok, err := fsm.Decode(data)
		if err != nil || !ok || !reflect.DeepEqual(got, c) {
			t.Fatalf("Decode = %#v %v %v, want %#v", got, ok, err, c)
		}
	}
}

func TestApplySetEnvironment(t *testing.T) {
	h := newHarness(t)
	h.reject(&fsm.SetEnvironment{Replica: "h1"}, fsm.ErrInvalid)
	h.reject(&fsm.SetEnvironment{Name: "torch"}, fsm.ErrInvalid)

	r := h.ok(&fsm.SetEnvironment{Name: "torch", Replica: "h1"})
	if e := r.Value.(fsm.Environment); e != (fsm.Environment{Name: "torch", Replica: "h1"}) {
		t.Fatalf("value %+v", e)
	}
	h.unchanged(&fsm.SetEnvironment{Name: "torch", Replica: "h1"}) // a retry
	res := h.reject(&fsm.SetEnvironment{Name: "torch", Replica: "h2"}, fsm.ErrConflict)
	if !strings.Contains(res.Err.Error(), "h1") {
		t.Fatalf("conflict does not name the owner: %v", res.Err)
	}
	h.ok(&fsm.SetEnvironment{Name: "alpine", Replica: "h2"})
	if got := h.m.Environments(); !reflect.DeepEqual(got, []fsm.Environment{{Name: "alpine", Replica: "h2"}, {Name: "torch", Replica: "h1"}}) {
		t.Fatalf("Environments() = %+v", got)
	}

	h.ok(&fsm.SetEnvironment{Name: "torch", Deleted: true})
	if _, ok := h.m.Environment("torch"); ok {
		t.Fatal("deleted environment still there")
	}
	h.unchanged(&fsm.SetEnvironment{Name: "torch", Deleted: true}) // deleting twice
	// Once deleted, the name may live elsewhere.
	h.ok(&fsm.SetEnvironment{Name: "torch", Replica: "h3"})
	if e, ok := h.m.Environment("torch"); !ok || e.Replica != "h3" {
		t.Fatalf("Environment(torch) = %+v %v", e, ok)
	}
}

func TestEnvironmentsSnapshotAndReplay(t *testing.T) {
	cmds := []fsm.Command{
		&fsm.SetEnvironment{Name: "zeta", Replica: "h2"},
		&fsm.SetEnvironment{Name: "alpha", Replica: "h1"},
		&fsm.SetEnvironment{Name: "mid", Replica: "h3"},
		&fsm.SetEnvironment{Name: "mid", Deleted: true},
		&fsm.SetEnvironment{Name: "beta", Replica: "h1"},
	}
	h := newHarness(t)
	h.register("n1", 0)
	h.submit(1)
	for _, c := range cmds {
		h.ok(c)
	}
	snap := snapshotBytes(t, h.m)
	for range 5 { // map order must not leak into the encoding
		if again := snapshotBytes(t, h.m); !bytes.Equal(again, snap) {
			assertSameState(t, "second Write", snap, again)
		}
	}
	if !bytes.Contains(snap, []byte(`"envs":[{"name":"alpha","replica":"h1"},{"name":"beta","replica":"h1"},{"name":"zeta","replica":"h2"}]`)) {
		t.Fatalf("snapshot does not hold the sorted environments: %s", snap)
	}

	m2 := fsm.New()
	if err := m2.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	if got := snapshotBytes(t, m2); !bytes.Equal(got, snap) {
		assertSameState(t, "restored", snap, got)
	}
	if !reflect.DeepEqual(m2.Environments(), h.m.Environments()) {
		t.Fatalf("restored environments %+v, want %+v", m2.Environments(), h.m.Environments())
	}

	// Replaying the same log on a fresh replica gives the same bytes.
	r := newHarness(t)
	r.register("n1", 0)
	r.submit(1)
	for _, c := range cmds {
		r.ok(c)
	}
	if got := snapshotBytes(t, r.m); !bytes.Equal(got, snap) {
		assertSameState(t, "replayed", snap, got)
	}

	// A state without environments encodes without the field, as before
	// environments existed; a restore over a machine with some clears them.
	empty := newHarness(t)
	empty.register("n1", 0)
	esnap := snapshotBytes(t, empty.m)
	if bytes.Contains(esnap, []byte(`"envs"`)) {
		t.Fatalf("empty envs encoded: %s", esnap)
	}
	if err := m2.Restore(bytes.NewReader(esnap)); err != nil {
		t.Fatal(err)
	}
	if len(m2.Environments()) != 0 {
		t.Fatalf("environments survived a restore: %+v", m2.Environments())
	}
}

func TestApplyTarballRecord(t *testing.T) {
	h := newHarness(t)
	sum := strings.Repeat("ab", 32)
	rec := func(v int64, s string) *fsm.TarballRecord { return &fsm.TarballRecord{Version: v, SHA256: s, Size: 10} }
	h.reject(&fsm.SetEnvironment{Name: "torch", Replica: "h1", Tarball: rec(0, sum)}, fsm.ErrInvalid)
	h.reject(&fsm.SetEnvironment{Name: "torch", Replica: "h1", Tarball: rec(100, "ABC")}, fsm.ErrInvalid)
	h.reject(&fsm.SetEnvironment{Name: "torch", Replica: "h1", Tarball: rec(100, strings.ToUpper(sum))}, fsm.ErrInvalid)

	h.ok(&fsm.SetEnvironment{Name: "torch", Replica: "h1", Tarball: rec(100, sum)})
	if got, ok := h.m.Tarball("torch"); !ok || got != *rec(100, sum) {
		t.Fatalf("Tarball(torch) = %+v %v", got, ok)
	}
	h.unchanged(&fsm.SetEnvironment{Name: "torch", Replica: "h1", Tarball: rec(100, sum)}) // a retry
	other := strings.Repeat("cd", 32)
	h.reject(&fsm.SetEnvironment{Name: "torch", Replica: "h1", Tarball: rec(100, other)}, fsm.ErrConflict)
	h.reject(&fsm.SetEnvironment{Name: "torch", Replica: "h1", Tarball: rec(99, other)}, fsm.ErrConflict)
	// A tarball recorded from the wrong replica changes nothing.
	h.reject(&fsm.SetEnvironment{Name: "torch", Replica: "h2", Tarball: rec(200, other)}, fsm.ErrConflict)
	// Recording the container again keeps the tarball.
	h.unchanged(&fsm.SetEnvironment{Name: "torch", Replica: "h1"})
	h.ok(&fsm.SetEnvironment{Name: "torch", Replica: "h1", Tarball: rec(200, other)})
	// Deleting the container keeps the tarball record.
	h.ok(&fsm.SetEnvironment{Name: "torch", Deleted: true})
	if got, ok := h.m.Tarball("torch"); !ok || got.Version != 200 || got.SHA256 != other {
		t.Fatalf("Tarball(torch) after delete = %+v %v", got, ok)
	}
	// A tarball without a replica (its container is gone) is recorded too.
	h.ok(&fsm.SetEnvironment{Name: "torch", Tarball: rec(300, sum)})
	if _, ok := h.m.Environment("torch"); ok {
		t.Fatal("a tarball record created an environment container record")
	}
	if got, _ := h.m.Tarball("torch"); got.Version != 300 {
		t.Fatalf("Tarball(torch) = %+v", got)
	}
}

func TestApplySetClusterID(t *testing.T) {
	h := newHarness(t)
	data := encode(t, &fsm.SetClusterID{ID: "abc123def"})
	if data[0] != byte(fsm.CmdSetClusterID) || fsm.CommandType(data[0]).String() != "set_cluster_id" {
		t.Fatalf("type byte %#x", data[0])
	}
	h.reject(&fsm.SetClusterID{ID: "UPPER-case"}, fsm.ErrInvalid)
	h.reject(&fsm.SetClusterID{ID: ""}, fsm.ErrInvalid)
	if r := h.ok(&fsm.SetClusterID{ID: "abc123def"}); r.Value != "abc123def" {
		t.Fatalf("value %v", r.Value)
	}
	// A second proposal (another leader) never changes it.
	if r := h.unchanged(&fsm.SetClusterID{ID: "zzz999zzz"}); r.Value != "abc123def" {
		t.Fatalf("second proposal: value %v", r.Value)
	}
	if got := h.m.ClusterID(); got != "abc123def" {
		t.Fatalf("ClusterID() = %q", got)
	}
}

func TestTarballsAndClusterIDSnapshotAndReplay(t *testing.T) {
	sum := strings.Repeat("0f", 32)
	cmds := []fsm.Command{
		&fsm.SetClusterID{ID: "c0ffee42"},
		&fsm.SetEnvironment{Name: "zeta", Replica: "h2", Tarball: &fsm.TarballRecord{Version: 5, SHA256: sum, Size: 7}},
		&fsm.SetEnvironment{Name: "alpha", Replica: "h1"},
		&fsm.SetEnvironment{Name: "alpha", Replica: "h1", Tarball: &fsm.TarballRecord{Version: 9, SHA256: sum}},
		&fsm.SetEnvironment{Name: "zeta", Deleted: true},
		&fsm.SetClusterID{ID: "other1234"},
	}
	h := newHarness(t)
	for _, c := range cmds {
		h.apply(c)
	}
	snap := snapshotBytes(t, h.m)
	for range 5 {
		if again := snapshotBytes(t, h.m); !bytes.Equal(again, snap) {
			assertSameState(t, "second Write", snap, again)
		}
	}
	want := `"env_tarballs":[{"name":"alpha","version":9,"sha256":"` + sum + `"},{"name":"zeta","version":5,"sha256":"` + sum + `","size":7}],"cluster_id":"c0ffee42"}`
	if !bytes.Contains(snap, []byte(want)) {
		t.Fatalf("snapshot lacks %s:\n%s", want, snap)
	}
	m2 := fsm.New()
	if err := m2.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	if got := snapshotBytes(t, m2); !bytes.Equal(got, snap) {
		assertSameState(t, "restored", snap, got)
	}
	if m2.ClusterID() != "c0ffee42" {
		t.Fatalf("restored cluster ID %q", m2.ClusterID())
	}
	if tb, ok := m2.Tarball("zeta"); !ok || tb.Version != 5 {
		t.Fatalf("restored tarball %+v %v", tb, ok)
	}
	r := newHarness(t)
	for _, c := range cmds {
		r.apply(c)
	}
	if got := snapshotBytes(t, r.m); !bytes.Equal(got, snap) {
		assertSameState(t, "replayed", snap, got)
	}
	// Restoring a state without them clears them.
	if err := m2.Restore(bytes.NewReader(snapshotBytes(t, fsm.New()))); err != nil {
		t.Fatal(err)
	}
	if _, ok := m2.Tarball("alpha"); ok || m2.ClusterID() != "" {
		t.Fatal("tarballs or cluster ID survived a restore")
	}
}
