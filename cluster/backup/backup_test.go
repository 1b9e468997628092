package backup

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// state returns a machine with a cluster ID, a node, tasks in several
// statuses and a user.
func state(t testing.TB, tasks int) *fsm.Machine {
	t.Helper()
	m := fsm.New()
	idx := uint64(0)
	apply := func(c fsm.Command) {
		t.Helper()
		data, err := fsm.Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		idx++
		if r := m.Apply(idx, data); r.Err != nil {
			t.Fatalf("apply %T: %v", c, r.Err)
		}
	}
	at := time.Unix(1_700_000_000, 0).UTC()
	apply(&fsm.SetClusterID{ID: "c0ffee"})
	apply(&fsm.RegisterNode{Node: &fsm.Node{Hostname: "n1", URL: "http://n1:8001", TotalCores: 4}, At: at})
	var ts []*fsm.Task
	for i := 1; i <= tasks; i++ {
		ts = append(ts, &fsm.Task{TaskID: int64(i), Status: fsm.StatusPending, Command: "echo", SubmittedAt: at})
	}
	apply(&fsm.SubmitTasks{RequestID: "r1", Tasks: ts})
	apply(&fsm.PutUser{User: &fsm.User{Name: "alice", Role: fsm.RoleUser}, Create: true})
	return m
}

// file writes m's snapshot in the backup format and returns its bytes.
func file(t testing.TB, m *fsm.Machine) []byte {
	t.Helper()
	s := m.Snapshot()
	h := Header{Format: FormatVersion, HakuriverVersion: "test", SnapshotVersion: fsm.SnapshotVersion, ClusterID: s.ClusterID(),
		AppliedIndex: s.AppliedIndex(), Term: 2, CreatedAt: time.Unix(1_700_000_100, 0).UTC(), Leader: "h1", Counts: s.Counts()}
	var buf bytes.Buffer
	sum, n, err := Write(&buf, h, s.Write)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) || len(sum) != 64 {
		t.Fatalf("Write returned %d bytes, sum %q; wrote %d", n, sum, buf.Len())
	}
	return buf.Bytes()
}

func writeTemp(t testing.TB, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "s.snap")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// readState opens data as a file and reads its state.
func readState(t testing.TB, data []byte) (*File, *fsm.Machine, error) {
	t.Helper()
	f, err := Open(writeTemp(t, data), 0)
	if err != nil {
		return nil, nil, err
	}
	t.Cleanup(func() { f.Close() })
	m, err := f.ReadState()
	if m != nil {
		t.Cleanup(func() { m.Close() })
	}
	return f, m, err
}

// readAt writes data to path and reads its state, closing the file.
func readAt(t testing.TB, path string, data []byte) error {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	m, err := f.ReadState()
	if m != nil {
		m.Close()
	}
	return err
}

func TestRoundTrip(t *testing.T) {
	m := state(t, 5)
	data := file(t, m)
	f, got, err := readState(t, data)
	if err != nil {
		t.Fatal(err)
	}
	h := f.Header
	if h.ClusterID != "c0ffee" || h.AppliedIndex != 4 || h.Term != 2 || h.Leader != "h1" || h.Counts.TasksTotal != 5 ||
		h.Counts.Tasks[fsm.StatusPending] != 5 || h.Counts.Nodes != 1 || h.Counts.Users != 1 {
		t.Fatalf("header %+v", h)
	}
	var a, b bytes.Buffer
	if err := m.Snapshot().Write(&a); err != nil {
		t.Fatal(err)
	}
	if err := got.Snapshot().Write(&b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatalf("restored state differs:\n%s\n%s", a.Bytes(), b.Bytes())
	}
}

// TestEveryByteFlipRefused flips each byte of a small file in turn: every
// one is refused, most as a checksum mismatch, none decodes.
func TestEveryByteFlipRefused(t *testing.T) {
	data := file(t, state(t, 2))
	path := filepath.Join(t.TempDir(), "s.snap")
	for i := range data {
		bad := append([]byte(nil), data...)
		bad[i] ^= 0x20
		if err := readAt(t, path, bad); err == nil {
			t.Fatalf("byte %d flipped: accepted", i)
		}
	}
}

// TestTruncatedRefused cuts the file at every length.
func TestTruncatedRefused(t *testing.T) {
	data := file(t, state(t, 2))
	path := filepath.Join(t.TempDir(), "s.snap")
	for n := range len(data) {
		err := readAt(t, path, data[:n])
		if err == nil || !errors.Is(err, ErrFormat) && !errors.Is(err, ErrChecksum) {
			t.Fatalf("cut at %d of %d: %v", n, len(data), err)
		}
	}
}

// resum replaces the trailer of data with the checksum of its content, as
// a hostile file would carry: the checksum holds, the content must still
// be refused on its own merits.
func resum(data []byte) []byte {
	body := data[:len(data)-trailerLen]
	s := sha256.Sum256(body)
	return append(append([]byte(nil), body...), []byte(trailerPrefix+hex.EncodeToString(s[:])+"\n")...)
}

func TestHostileContentRefused(t *testing.T) {
	good := file(t, state(t, 2))
	replace := func(old, new string) []byte {
		if !bytes.Contains(good, []byte(old)) {
			t.Fatalf("no %q in the file", old)
		}
		return resum(bytes.Replace(good, []byte(old), []byte(new), 1))
	}
	huge := append([]byte(Magic), bytes.Repeat([]byte("x"), MaxHeaderBytes+10)...)
	for name, tc := range map[string]struct {
		data []byte
		want error
	}{
		"newer format":          {replace(`{"format":1,`, `{"format":2,`), ErrNewerFormat},
		"newer state encoding":  {replace(`"snapshot_version":1`, `"snapshot_version":9`), ErrNewerFormat},
		"format 0":              {replace(`{"format":1,`, `{"format":0,`), ErrFormat},
		"unknown header field":  {replace(`{"format":1,`, `{"format":1,"evil":1,`), ErrFormat},
		"negative count":        {replace(`"nodes":1`, `"nodes":-1`), ErrFormat},
		"unknown task status":   {replace(`"pending":2`, `"pwned":2`), ErrFormat},
		"header without end":    {huge, ErrFormat},
		"header lies (cluster)": {replace(`"cluster_id":"c0ffee","applied`, `"cluster_id":"other","applied`), ErrFormat},
		"header lies (tasks)":   {replace(`"tasks_total":2`, `"tasks_total":1`), ErrFormat},
		"header lies (nodes)":   {replace(`"nodes":1`, `"nodes":3`), ErrFormat},
		"header lies (status)":  {replace(`"pending":2`, `"pending":1,"running":1`), ErrFormat},
		"unknown count field":   {replace(`"users":`, `"x_users":7,"users":`), ErrFormat},
		"task without ID":       {replace(`"task_id":"1"`, `"task_id":"0"`), ErrFormat},
		"data after the state":  {resum(bytes.Replace(good, []byte("}\n"+trailerPrefix), []byte("} {}\n"+trailerPrefix), 1)), ErrFormat},
		"not json":              {replace(`{"version":1`, `[1,2`), ErrFormat},
		"unknown state key":     {replace(`{"version":1`, `{"zzz":[1],"version":1`), ErrFormat},
		"repeated state key":    {replace(`{"version":1`, `{"version":1,"version":1`), ErrFormat},
		"unknown task field":    {replace(`"task_id":"1"`, `"task_id":"1","evil":1`), ErrFormat},
	} {
		_, _, err := readState(t, tc.data)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
}

// TestNamedPipeRefused: a FIFO in place of the file is refused at once
// instead of hanging the open.
func TestNamedPipeRefused(t *testing.T) {
	p := filepath.Join(t.TempDir(), "fifo.snap")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := Open(p, 0)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrFormat) {
			t.Fatalf("Open(fifo) = %v, want ErrFormat", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Open(fifo) still blocked after 10 s")
	}
}

func TestSizeBound(t *testing.T) {
	data := file(t, state(t, 2))
	if _, err := Open(writeTemp(t, data), int64(len(data)-1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("over the bound: %v", err)
	}
	if f, err := Open(writeTemp(t, data), int64(len(data))); err != nil {
		t.Fatalf("at the bound: %v", err)
	} else {
		f.Close()
	}
	if _, err := Open(t.TempDir(), 0); err == nil || !strings.Contains(err.Error(), "regular file") {
		t.Fatalf("a directory: %v", err)
	}
}

func FuzzReadState(f *testing.F) {
	good := file(f, state(f, 2))
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte(Magic + "{}\n{}\n"))
	path := filepath.Join(f.TempDir(), "fuzz.snap")
	f.Fuzz(func(t *testing.T, data []byte) {
		// Refusing is fine; a panic, or neither a state nor an error, is
		// not. The checksum is made to hold, so the decoding is reached.
		if err := os.WriteFile(path, resum(append(data, make([]byte, trailerLen)...)), 0o600); err != nil {
			t.Fatal(err)
		}
		sf, err := Open(path, 0)
		if err != nil {
			return
		}
		defer sf.Close()
		m, err := sf.ReadState()
		if err == nil && m == nil {
			t.Fatal("no state and no error")
		}
		if m != nil {
			m.Close() // its temporary archive, if any
		}
	})
}
