package fsm

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestArchiveOtherShapeReencodes: an archive whose values another build
// encoded (meta shape differs) is streamed by decoding and encoding each
// task, and gives the same snapshot as one streamed as stored.
func TestArchiveOtherShapeReencodes(t *testing.T) {
	a, err := OpenArchive(filepath.Join(t.TempDir(), "archive.db"))
	if err != nil {
		t.Fatal(err)
	}
	m := NewWithArchive(a)
	defer m.Close()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	apply := func(i uint64, c Command) {
		data, err := Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		if r := m.Apply(i, data); r.Err != nil {
			t.Fatalf("entry %d: %v", i, r.Err)
		}
	}
	var tasks []*Task
	var ups []UpdateTask
	var ids IDList
	for id := int64(1); id <= 50; id++ {
		tasks = append(tasks, &Task{TaskID: id, TaskType: TaskCommand, Command: "echo <&>", Arguments: []string{"é", "\u2028"},
			Status: StatusPending, SubmittedAt: at, EnvVars: map[string]string{"B": "1", "A": "2"}})
		ups = append(ups, UpdateTask{TaskID: id, Status: StatusCompleted, At: at.Add(time.Second)})
		ids = append(ids, id)
	}
	apply(1, &SubmitTasks{Tasks: tasks})
	apply(2, &UpdateTasks{Updates: ups})
	apply(3, &ArchiveTasks{TaskIDs: ids, At: at})
	write := func() ([]byte, bool) {
		s := m.Snapshot()
		raw := s.archRaw
		var b bytes.Buffer
		if err := s.Write(&b); err != nil {
			t.Fatal(err)
		}
		return b.Bytes(), raw
	}
	asStored, raw := write()
	if !raw {
		t.Fatalf("an archive of this build's shape is not streamed as stored")
	}
	err = m.arch.db.Update(func(tx *bolt.Tx) error {
		meta, err := readMeta(tx)
		if err != nil {
			return err
		}
		meta.shape = "another build"
		return writeMeta(tx, meta)
	})
	if err != nil {
		t.Fatal(err)
	}
	reencoded, raw := write()
	if raw {
		t.Fatalf("an archive of another shape is streamed as stored")
	}
	if !bytes.Equal(asStored, reencoded) {
		t.Fatalf("streamed as stored and re-encoded differ:\n%s\n%s", asStored, reencoded)
	}
}
