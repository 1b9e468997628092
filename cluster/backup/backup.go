// Package backup is the file format of a cluster snapshot (`hakuriver
// cluster snapshot save|inspect|restore`): a magic line, a JSON header line,
// the replicated state as fsm.Snapshot.Write encodes it, and a trailer line
// with the SHA-256 of everything before it.
//
//	HAKURIVER-SNAPSHOT\n
//	{"format":1,"hakuriver_version":...,"counts":{...}}\n
//	<body: the FSM snapshot, one JSON object>
//	HAKURIVER-SHA256 <64 hex digits>\n
//
// The writer streams (the checksum is computed on the way out, so it goes
// last); the reader works on a file, whose size tells where the trailer
// starts. A file is untrusted input: the header is bounded and decoded
// strictly, and the body is decoded by fsm.ReadSnapshot.
package backup

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// FormatVersion is the version of the file format this build writes and
// the newest it reads.
const FormatVersion = 1

// Magic is the first line of every snapshot file.
const Magic = "HAKURIVER-SNAPSHOT\n"

const (
	trailerPrefix = "HAKURIVER-SHA256 "
	// trailerLen is the trailer line's exact length.
	trailerLen = len(trailerPrefix) + 2*sha256.Size + 1
	// MaxHeaderBytes bounds the header line.
	MaxHeaderBytes = 64 << 10
	// DefaultMaxFileBytes bounds the files Open accepts unless told
	// otherwise.
	DefaultMaxFileBytes int64 = 4 << 30
)

// Errors of Open and Verify, to be tested with errors.Is.
var (
	// ErrFormat: not a snapshot file, or a malformed one (a truncated file
	// is one).
	ErrFormat = errors.New("not a valid hakuriver snapshot file")
	// ErrNewerFormat: written by a newer hakuriver, in a format this build
	// does not know.
	ErrNewerFormat = errors.New("snapshot file written in a newer format")
	// ErrChecksum: the content does not match its checksum (corrupt or
	// truncated).
	ErrChecksum = errors.New("snapshot checksum mismatch")
	// ErrTooLarge: the file is larger than the bound given to Open.
	ErrTooLarge = errors.New("snapshot file too large")
)

// Header describes a snapshot. It is written by the leader, which takes
// CreatedAt from its clock (never inside Apply).
type Header struct {
	// Format is the file format version (FormatVersion when written).
	Format int `json:"format"`
	// HakuriverVersion is the version of the binary that wrote the file.
	HakuriverVersion string `json:"hakuriver_version"`
	// SnapshotVersion is the version of the FSM encoding in the body
	// (fsm.SnapshotVersion).
	SnapshotVersion int `json:"snapshot_version"`
	// ClusterID names the cluster the state belongs to.
	ClusterID string `json:"cluster_id"`
	// AppliedIndex is the Raft index of the last entry in the state; Term
	// the term of that entry (or the leader's term when the entry was
	// already compacted away).
	AppliedIndex uint64 `json:"applied_index"`
	Term         uint64 `json:"term"`
	// CreatedAt is when the leader took the snapshot; Leader is its node ID.
	CreatedAt time.Time `json:"created_at"`
	Leader    string    `json:"leader"`
	// Counts summarises the state.
	Counts fsm.SnapshotCounts `json:"counts"`
}

// Write writes a whole snapshot file to w: the magic line, h, the body that
// body writes, and the checksum trailer. It returns the checksum (hex) and
// the number of bytes written. Nothing is buffered beyond a write buffer.
func Write(w io.Writer, h Header, body func(io.Writer) error) (sum string, n int64, err error) {
	hb, err := json.Marshal(h)
	if err != nil {
		return "", 0, fmt.Errorf("encode snapshot header: %w", err)
	}
	if len(hb) > MaxHeaderBytes {
		return "", 0, fmt.Errorf("snapshot header: %d bytes, more than %d", len(hb), MaxHeaderBytes)
	}
	cw := &countWriter{w: w}
	sha := sha256.New()
	hw := io.MultiWriter(cw, sha)
	if _, err := io.WriteString(hw, Magic); err != nil {
		return "", cw.n, fmt.Errorf("write snapshot: %w", err)
	}
	if _, err := hw.Write(append(hb, '\n')); err != nil {
		return "", cw.n, fmt.Errorf("write snapshot: %w", err)
	}
	if err := body(hw); err != nil {
		return "", cw.n, fmt.Errorf("write snapshot body: %w", err)
	}
	sum = hex.EncodeToString(sha.Sum(nil))
	if _, err := io.WriteString(cw, trailerPrefix+sum+"\n"); err != nil {
		return "", cw.n, fmt.Errorf("write snapshot trailer: %w", err)
	}
	return sum, cw.n, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// File is an opened snapshot file whose header has been read. Verify
// checks its checksum; Body reads the FSM state.
type File struct {
	Header Header
	// Size is the file's size; Checksum the hex SHA-256 its trailer claims.
	Size     int64
	Checksum string

	f          *os.File
	bodyOffset int64
	bodySize   int64
}

// Open opens path and reads its magic line, header and trailer. It refuses
// a file larger than maxBytes (<= 0: DefaultMaxFileBytes), one that is not
// a snapshot file or is cut short (ErrFormat), and one of a newer format
// (ErrNewerFormat). It does not verify the checksum: call Verify.
func Open(path string, maxBytes int64) (*File, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxFileBytes
	}
	// O_NONBLOCK: a named pipe in place of the file must not hang the
	// open; open() then refuses anything but a regular file.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("open snapshot: %w", err)
	}
	sf, err := open(f, maxBytes)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return sf, nil
}

func open(f *os.File, maxBytes int64) (*File, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: not a regular file", ErrFormat)
	}
	size := st.Size()
	if size > maxBytes {
		return nil, fmt.Errorf("%w: %d bytes, more than the bound of %d", ErrTooLarge, size, maxBytes)
	}
	br := bufio.NewReaderSize(io.LimitReader(f, int64(len(Magic))+MaxHeaderBytes+1), 4096)
	magic := make([]byte, len(Magic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != Magic {
		return nil, fmt.Errorf("%w: no %q line", ErrFormat, Magic[:len(Magic)-1])
	}
	line, err := br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) || len(line) >= MaxHeaderBytes {
			return nil, fmt.Errorf("%w: header longer than %d bytes", ErrFormat, MaxHeaderBytes)
		}
		return nil, fmt.Errorf("%w: header cut short", ErrFormat)
	}
	hdr, err := decodeHeader(line)
	if err != nil {
		return nil, err
	}
	bodyOffset := int64(len(Magic) + len(line))
	bodySize := size - bodyOffset - int64(trailerLen)
	if bodySize < 2 { // "{}" at the very least
		return nil, fmt.Errorf("%w: cut short (%d bytes)", ErrFormat, size)
	}
	trailer := make([]byte, trailerLen)
	if _, err := f.ReadAt(trailer, size-int64(trailerLen)); err != nil {
		return nil, fmt.Errorf("%w: read trailer: %v", ErrFormat, err)
	}
	sum, ok := parseTrailer(trailer)
	if !ok {
		return nil, fmt.Errorf("%w: no checksum trailer at the end (truncated?)", ErrFormat)
	}
	return &File{Header: hdr, Size: size, Checksum: sum, f: f, bodyOffset: bodyOffset, bodySize: bodySize}, nil
}

// decodeHeader decodes the header line strictly: a newer format is
// reported as such, and otherwise no unknown field, no trailing data and
// no negative count is accepted.
func decodeHeader(line []byte) (Header, error) {
	var v struct {
		Format int `json:"format"`
	}
	if err := json.Unmarshal(line, &v); err != nil {
		return Header{}, fmt.Errorf("%w: header: %v", ErrFormat, err)
	}
	if v.Format > FormatVersion {
		return Header{}, fmt.Errorf("%w: format %d, this hakuriver reads up to %d; use a newer hakuriver",
			ErrNewerFormat, v.Format, FormatVersion)
	}
	if v.Format < 1 {
		return Header{}, fmt.Errorf("%w: header: format %d", ErrFormat, v.Format)
	}
	var h Header
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return Header{}, fmt.Errorf("%w: header: %v", ErrFormat, err)
	}
	if dec.More() {
		return Header{}, fmt.Errorf("%w: header: data after the object", ErrFormat)
	}
	c := h.Counts
	for st, n := range c.Tasks {
		if n < 0 || !st.Valid() {
			return Header{}, fmt.Errorf("%w: header: counts.tasks: %q: %d", ErrFormat, st, n)
		}
	}
	for _, n := range []int{c.TasksTotal, c.Nodes, c.Environments, c.Tarballs, c.Users, c.Groups, c.Tokens, c.AuditRecords} {
		if n < 0 {
			return Header{}, fmt.Errorf("%w: header: negative count", ErrFormat)
		}
	}
	return h, nil
}

func parseTrailer(b []byte) (string, bool) {
	if !bytes.HasPrefix(b, []byte(trailerPrefix)) || b[len(b)-1] != '\n' {
		return "", false
	}
	sum := string(b[len(trailerPrefix) : len(b)-1])
	if _, err := hex.DecodeString(sum); err != nil || len(sum) != 2*sha256.Size {
		return "", false
	}
	return sum, true
}

// Verify hashes everything before the trailer and compares it with the
// trailer's checksum: ErrChecksum when they differ.
func (f *File) Verify() error {
	sha := sha256.New()
	if err := f.hash(sha); err != nil {
		return err
	}
	if got := hex.EncodeToString(sha.Sum(nil)); got != f.Checksum {
		return fmt.Errorf("%w: content hashes to %s, the file says %s", ErrChecksum, got, f.Checksum)
	}
	return nil
}

func (f *File) hash(h hash.Hash) error {
	if _, err := io.Copy(h, io.NewSectionReader(f.f, 0, f.bodyOffset+f.bodySize)); err != nil {
		return fmt.Errorf("read snapshot: %w", err)
	}
	return nil
}

// Body returns a reader of the FSM state (fsm.ReadSnapshot reads it).
func (f *File) Body() io.Reader { return io.NewSectionReader(f.f, f.bodyOffset, f.bodySize) }

// BodySize is the size of the FSM state in bytes.
func (f *File) BodySize() int64 { return f.bodySize }

// ReadState verifies the checksum, then decodes the body strictly into a
// state machine and checks it against the header (cluster ID, applied
// index, task count). Close the Machine when done: archived tasks are
// held in a temporary file until then.
func (f *File) ReadState() (*fsm.Machine, error) {
	if err := f.Verify(); err != nil {
		return nil, err
	}
	if v := f.Header.SnapshotVersion; v != fsm.SnapshotVersion {
		kind := ErrFormat
		if v > fsm.SnapshotVersion {
			kind = ErrNewerFormat
		}
		return nil, fmt.Errorf("%w: state encoding version %d, this hakuriver reads %d", kind, v, fsm.SnapshotVersion)
	}
	m, err := fsm.ReadSnapshot(f.Body())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	h := f.Header
	snap := m.Snapshot()
	snap.Close()
	if m.ClusterID() != h.ClusterID || m.AppliedIndex() != h.AppliedIndex || m.Len() != h.Counts.TasksTotal {
		m.Close()
		return nil, fmt.Errorf("%w: the state (cluster %q, index %d, %d tasks) does not match the header (cluster %q, index %d, %d tasks)",
			ErrFormat, m.ClusterID(), m.AppliedIndex(), m.Len(), h.ClusterID, h.AppliedIndex, h.Counts.TasksTotal)
	}
	// Every count the header shows (inspect prints them) must be the
	// state's own: a header that under-reports, say, the tokens would
	// hide what a restore brings in.
	if got := snap.Counts(); !sameCounts(got, h.Counts) {
		m.Close()
		return nil, fmt.Errorf("%w: the state's counts %+v do not match the header's %+v", ErrFormat, got, h.Counts)
	}
	return m, nil
}

// sameCounts reports whether a and b count the same things.
func sameCounts(a, b fsm.SnapshotCounts) bool {
	if a.TasksTotal != b.TasksTotal || a.Nodes != b.Nodes || a.Environments != b.Environments || a.Tarballs != b.Tarballs ||
		a.Users != b.Users || a.Groups != b.Groups || a.Tokens != b.Tokens || a.AuditRecords != b.AuditRecords {
		return false
	}
	for st, n := range a.Tasks {
		if b.Tasks[st] != n {
			return false
		}
	}
	for st, n := range b.Tasks {
		if a.Tasks[st] != n {
			return false
		}
	}
	return true
}

// Close closes the file.
func (f *File) Close() error { return f.f.Close() }
