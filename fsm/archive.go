package fsm

import (
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Archive is the on-disk part of the replicated state: finished tasks that
// an ArchiveTasks entry moved out of memory, in one bbolt file beside the
// Raft data. Every replica applies the same entries, so every replica's
// archive holds the same tasks; the file's bytes may differ (page layout),
// its content does not. A Machine writes it only in Apply and Restore;
// reads may run concurrently.
//
// Buckets: "tasks" maps the task ID (8 bytes, big endian, so a cursor walks
// IDs in order) to the task (a version byte, then the task's JSON
// compressed with flate and a fixed dictionary); "index" holds empty keys
// that find the tasks of a batch, a name, an owner and the VPS tasks
// without reading the others (indexKeys); "meta" holds the index of the
// last ArchiveTasks entry applied and the counts by status.
type Archive struct {
	path string
	db   *bolt.DB
}

var (
	bucketTasks = []byte("tasks")
	bucketIndex = []byte("index")
	bucketMeta  = []byte("meta")
	keyIndex    = []byte("index")
	keyCounts   = []byte("counts")
	keyShape    = []byte("shape")
)

// taskShape names how this build encodes a Task in JSON: a hash of the
// Task type's fields, types and tags (nested ones too) and the Go version.
// An archive whose values were all encoded by a build of the same shape
// (its meta says so) streams them into a snapshot as stored, without
// decoding and encoding each again: the bytes are those a re-encoding
// would give.
var taskShape = sync.OnceValue(func() string {
	var b strings.Builder
	seen := map[reflect.Type]bool{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		fmt.Fprintf(&b, "%s/%s;", t, t.Kind())
		switch t.Kind() {
		case reflect.Map:
			walk(t.Key())
			walk(t.Elem())
		case reflect.Pointer, reflect.Slice, reflect.Array:
			walk(t.Elem())
		case reflect.Struct:
			if seen[t] {
				return
			}
			seen[t] = true
			for i := range t.NumField() {
				f := t.Field(i)
				fmt.Fprintf(&b, "%s %s `%s`;", f.Name, f.Type, f.Tag)
				walk(f.Type)
			}
		}
	}
	walk(reflect.TypeFor[Task]())
	sum := sha256.Sum256([]byte(b.String() + runtime.Version()))
	return hex.EncodeToString(sum[:8])
})

// archiveValueV1 marks a value: flate (with archiveDict) of the task JSON.
const archiveValueV1 = 1

// archiveDict primes the compressor with what every task's JSON repeats,
// so that a value of a few hundred bytes still compresses well.
var archiveDict = []byte(`{"task_id":"","task_type":"command","batch_id":"","request_id":"","command":"","arguments":[],` +
	`"env_vars":{},"working_dir":"","required_cores":1,"required_gpus":null,"required_memory_bytes":0,"status":"completed",` +
	`"target_node":"","assigned_node":"","target_numa_node_id":null,"container_name":"NULL","privileged":false,` +
	`"additional_mounts":null,"stdout_path":"/task_outputs/","stderr_path":"/task_errors/","exit_code":0,"error_message":"",` +
	`"submitted_at":"2026-12-07T00:00:00.000000000Z","started_at":"2026-12-07T00:00:00.000000000Z",` +
	`"completed_at":"2026-12-07T00:00:00.000000000Z","systemd_unit_name":"","assignment_suspicion_count":0,"owner":"",` +
	`"run_as":"","allow_root":true,"placements":[{"node":"","at":"2026-12-07T00:00:00.000000000Z","event":"placed"},` +
	`{"node":"","at":"2026-12-07T00:00:00.000000000Z","event":"started"}],"failed","killed","lost","vps","name":""}`)

// archiveMmapSize is the address space bbolt maps up front: while the file
// stays below it, a write never waits for a long read (a snapshot being
// streamed) to remap. It is virtual memory, not resident.
const archiveMmapSize = 8 << 30

// OpenArchive opens (creating it if needed) the archive file at path.
func OpenArchive(path string) (*Archive, error) {
	// The freelist is synced (bbolt's default): without it, opening the
	// file walks every page to rebuild it, which reads the whole archive
	// into the page cache and this process's RSS.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second, InitialMmapSize: archiveMmapSize,
		FreelistType: bolt.FreelistMapType})
	if err != nil {
		return nil, fmt.Errorf("open archive %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketTasks, bucketIndex, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open archive %s: %w", path, err)
	}
	return &Archive{path: path, db: db}, nil
}

// Path is the archive's file.
func (a *Archive) Path() string { return a.path }

// Close closes the file. It waits for open reads to end.
func (a *Archive) Close() error { return a.db.Close() }

// Size is the archive file's size in bytes.
func (a *Archive) Size() int64 {
	var n int64
	a.db.View(func(tx *bolt.Tx) error { n = tx.Size(); return nil }) //nolint:errcheck // View of a size cannot fail
	return n
}

// archiveMeta is what the meta bucket holds.
type archiveMeta struct {
	index  uint64
	counts map[Status]int
	// shape is the taskShape of every stored value ("" when mixed).
	shape string
}

func (m archiveMeta) total() int {
	n := 0
	for _, c := range m.counts {
		n += c
	}
	return n
}

// meta reads the index and counts.
func (a *Archive) meta() (archiveMeta, error) {
	var out archiveMeta
	err := a.db.View(func(tx *bolt.Tx) error {
		var err error
		out, err = readMeta(tx)
		return err
	})
	return out, err
}

func readMeta(tx *bolt.Tx) (archiveMeta, error) {
	out := archiveMeta{counts: map[Status]int{}}
	b := tx.Bucket(bucketMeta)
	if v := b.Get(keyIndex); len(v) == 8 {
		out.index = binary.BigEndian.Uint64(v)
	}
	if v := b.Get(keyCounts); v != nil {
		if err := json.Unmarshal(v, &out.counts); err != nil {
			return out, fmt.Errorf("archive counts: %w", err)
		}
	}
	out.shape = string(b.Get(keyShape))
	return out, nil
}

func writeMeta(tx *bolt.Tx, m archiveMeta) error {
	b := tx.Bucket(bucketMeta)
	idx := make([]byte, 8)
	binary.BigEndian.PutUint64(idx, m.index)
	if err := b.Put(keyIndex, idx); err != nil {
		return err
	}
	counts, err := json.Marshal(m.counts)
	if err != nil {
		return err
	}
	if err := b.Put(keyShape, []byte(m.shape)); err != nil {
		return err
	}
	return b.Put(keyCounts, counts)
}

func idKey(id int64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, uint64(id))
	return k
}

// Index key kinds: the first byte of an "index" key.
const (
	indexBatch = 'b' // then the batch ID (8 bytes), then the task ID
	indexName  = 'n' // then the name, 0, then the task ID
	indexOwner = 'o' // then the owner, 0, then the task ID
	indexVPS   = 'v' // then the task ID
)

// indexPrefix returns the prefix of the index keys that f selects by, the
// most selective first; nil when no index applies (a scan of every task).
func indexPrefix(f Filter) []byte {
	switch {
	case f.Batch != 0:
		return binary.BigEndian.AppendUint64([]byte{indexBatch}, uint64(f.Batch))
	case f.Name != "":
		return append(append([]byte{indexName}, f.Name...), 0)
	case f.Type == TaskVPS:
		return []byte{indexVPS}
	case f.Owner != "":
		return append(append([]byte{indexOwner}, f.Owner...), 0)
	}
	return nil
}

// indexKeys returns the index keys of t.
func indexKeys(t *Task) [][]byte {
	var out [][]byte
	add := func(prefix []byte) { out = append(out, binary.BigEndian.AppendUint64(prefix, uint64(t.TaskID))) }
	if t.BatchID != 0 {
		add(indexPrefix(Filter{Batch: t.BatchID}))
	}
	if t.Name != "" {
		add(indexPrefix(Filter{Name: t.Name}))
	}
	if t.TaskType == TaskVPS {
		add(indexPrefix(Filter{Type: TaskVPS}))
	}
	if t.Owner != "" {
		add(indexPrefix(Filter{Owner: t.Owner}))
	}
	return out
}

// archiveCodec compresses and decompresses values; one per goroutine.
type archiveCodec struct {
	buf bytes.Buffer
	w   *flate.Writer
}

func newArchiveCodec() *archiveCodec {
	c := &archiveCodec{}
	c.w, _ = flate.NewWriterDict(&c.buf, flate.BestSpeed, archiveDict) // BestSpeed is a valid level
	return c
}

// encode returns the stored form of t (a fresh slice).
func (c *archiveCodec) encode(t *Task) ([]byte, error) {
	js, err := json.Marshal(t)
	if err != nil {
		return nil, fmt.Errorf("encode task %d: %w", t.TaskID, err)
	}
	c.buf.Reset()
	c.buf.WriteByte(archiveValueV1)
	c.w.Reset(&c.buf)
	if _, err := c.w.Write(js); err != nil {
		return nil, err
	}
	if err := c.w.Close(); err != nil {
		return nil, err
	}
	return bytes.Clone(c.buf.Bytes()), nil
}

var inflaters = sync.Pool{New: func() any { return flate.NewReaderDict(bytes.NewReader(nil), archiveDict) }}

// decodeArchived reads a stored task.
func decodeArchived(v []byte) (*Task, error) {
	if len(v) == 0 || v[0] != archiveValueV1 {
		return nil, errors.New("archived task: unknown value format")
	}
	r := inflaters.Get().(io.ReadCloser)
	defer inflaters.Put(r)
	if err := r.(flate.Resetter).Reset(bytes.NewReader(v[1:]), archiveDict); err != nil {
		return nil, fmt.Errorf("archived task: %w", err)
	}
	var t Task
	if err := json.NewDecoder(r).Decode(&t); err != nil {
		return nil, fmt.Errorf("archived task: %w", err)
	}
	return &t, nil
}

// inflateArchived appends the task JSON of a stored value to dst.
func inflateArchived(dst *bytes.Buffer, v []byte) error {
	if len(v) == 0 || v[0] != archiveValueV1 {
		return errors.New("archived task: unknown value format")
	}
	r := inflaters.Get().(io.ReadCloser)
	defer inflaters.Put(r)
	if err := r.(flate.Resetter).Reset(bytes.NewReader(v[1:]), archiveDict); err != nil {
		return fmt.Errorf("archived task: %w", err)
	}
	if _, err := dst.ReadFrom(r); err != nil {
		return fmt.Errorf("archived task: %w", err)
	}
	return nil
}

// put stores tasks in an open write transaction and adds them to m's
// counts. A task already stored is left as it is.
func putArchived(tx *bolt.Tx, c *archiveCodec, m *archiveMeta, tasks []*Task) error {
	tb, bb := tx.Bucket(bucketTasks), tx.Bucket(bucketIndex)
	// Tasks arrive by ascending ID, mostly above every stored one: full
	// pages (bbolt's default leaves them half empty) halve the file.
	tb.FillPercent, bb.FillPercent = 0.95, 0.95
	for _, t := range tasks {
		k := idKey(t.TaskID)
		if tb.Get(k) != nil {
			continue
		}
		v, err := c.encode(t)
		if err != nil {
			return err
		}
		if err := tb.Put(k, v); err != nil {
			return err
		}
		for _, k := range indexKeys(t) {
			if err := bb.Put(k, nil); err != nil {
				return err
			}
		}
		m.counts[t.Status]++
	}
	return nil
}

// add stores the tasks moved by the ArchiveTasks entry at index, and the
// index, in one transaction (fsync'd). An entry at or below the stored
// index was applied before (a replay): nothing is written.
func (a *Archive) add(index uint64, tasks []*Task) error {
	return a.db.Update(func(tx *bolt.Tx) error {
		m, err := readMeta(tx)
		if err != nil {
			return err
		}
		if index <= m.index {
			return nil
		}
		switch {
		case m.total() == 0:
			m.shape = taskShape()
		case m.shape != taskShape():
			m.shape = "" // values of another build's encoding stay
		}
		if err := putArchived(tx, newArchiveCodec(), &m, tasks); err != nil {
			return err
		}
		m.index = index
		return writeMeta(tx, m)
	})
}

// get reads one task in tx.
func getArchived(tx *bolt.Tx, id int64) (*Task, bool, error) {
	v := tx.Bucket(bucketTasks).Get(idKey(id))
	if v == nil {
		return nil, false, nil
	}
	t, err := decodeArchived(v)
	if err != nil {
		return nil, false, fmt.Errorf("task %d: %w", id, err)
	}
	return t, true, nil
}

// scanArchived calls fn for the archived tasks below the ID before (0 =
// from the newest), newest first, until fn returns false: those of the
// index f selects by (indexPrefix), or else every one. fn still checks f.
func scanArchived(tx *bolt.Tx, f Filter, before int64, fn func(*Task) bool) error {
	if prefix := indexPrefix(f); prefix != nil {
		return scanIndex(tx, prefix, before, fn)
	}
	c := tx.Bucket(bucketTasks).Cursor()
	var k, v []byte
	if before > 0 {
		k, v = c.Seek(idKey(before))
		if k == nil {
			k, v = c.Last()
		} else {
			k, v = c.Prev()
		}
	} else {
		k, v = c.Last()
	}
	for ; k != nil; k, v = c.Prev() {
		t, err := decodeArchived(v)
		if err != nil {
			return fmt.Errorf("task %d: %w", int64(binary.BigEndian.Uint64(k)), err)
		}
		if !fn(t) {
			return nil
		}
	}
	return nil
}

func scanIndex(tx *bolt.Tx, prefix []byte, before int64, fn func(*Task) bool) error {
	c := tx.Bucket(bucketIndex).Cursor()
	if before <= 0 {
		before = int64(^uint64(0) >> 1)
	}
	k, _ := c.Seek(binary.BigEndian.AppendUint64(bytes.Clone(prefix), uint64(before)))
	if k == nil {
		k, _ = c.Last()
	} else {
		k, _ = c.Prev()
	}
	for ; k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Prev() {
		if len(k) != len(prefix)+8 {
			continue // a longer name or owner that starts alike
		}
		id := int64(binary.BigEndian.Uint64(k[len(prefix):]))
		t, ok, err := getArchived(tx, id)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("the index names task %d, which the archive does not hold", id)
		}
		if !fn(t) {
			return nil
		}
	}
	return nil
}

// archiveBuilder fills a fresh archive file (for Restore) in transactions
// of a bounded size; install swaps it in for the old one.
type archiveBuilder struct {
	a     *Archive
	codec *archiveCodec
	meta  archiveMeta
	batch []*Task
}

// restorePath is where a Restore builds the new archive before swapping it
// in: the old file stays as it is until the new one is complete.
func restorePath(path string) string { return path + ".restore" }

func newArchiveBuilder(path string) (*archiveBuilder, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale %s: %w", path, err)
	}
	a, err := OpenArchive(path)
	if err != nil {
		return nil, err
	}
	// A builder's writes need no fsync each: install syncs once at the end.
	a.db.NoSync = true
	return &archiveBuilder{a: a, codec: newArchiveCodec(), meta: archiveMeta{counts: map[Status]int{}, shape: taskShape()}}, nil
}

func (b *archiveBuilder) add(t *Task) error {
	b.batch = append(b.batch, t)
	if len(b.batch) >= 4096 {
		return b.flush()
	}
	return nil
}

func (b *archiveBuilder) flush() error {
	if len(b.batch) == 0 {
		return nil
	}
	err := b.a.db.Update(func(tx *bolt.Tx) error { return putArchived(tx, b.codec, &b.meta, b.batch) })
	b.batch = b.batch[:0]
	if err != nil {
		return fmt.Errorf("build archive: %w", err)
	}
	return nil
}

// finish writes the meta (index) and syncs the file.
func (b *archiveBuilder) finish(index uint64) error {
	if err := b.flush(); err != nil {
		return err
	}
	b.meta.index = index
	if err := b.a.db.Update(func(tx *bolt.Tx) error { return writeMeta(tx, b.meta) }); err != nil {
		return fmt.Errorf("build archive: %w", err)
	}
	b.a.db.NoSync = false
	if err := b.a.db.Sync(); err != nil {
		return fmt.Errorf("build archive: sync: %w", err)
	}
	return nil
}

// discard closes and removes the partial file.
func (b *archiveBuilder) discard() {
	b.a.Close()         //nolint:errcheck // the file is removed
	os.Remove(b.a.path) //nolint:errcheck // best effort: the next build removes it too
}

// installArchive renames the built file over the old archive's path and
// returns it open at that path; the old archive is closed.
func installArchive(old *Archive, built *Archive) (*Archive, error) {
	if err := os.Rename(built.path, old.path); err != nil {
		return nil, fmt.Errorf("install archive: %w", err)
	}
	if d, err := os.Open(filepath.Dir(old.path)); err == nil {
		d.Sync() //nolint:errcheck // best effort: the rename is durable with the next fsync of the dir anyway
		d.Close()
	}
	built.path = old.path
	old.Close() //nolint:errcheck // its file is gone
	return built, nil
}
