package fsm

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
)

// archiveRestore decides, while a snapshot is decoded, what becomes of the
// archive: when the current archive already holds the snapshot's archived
// tasks (same last ArchiveTasks index and counts, as after a restart with
// no archiving since the snapshot) it is kept and the snapshot's list is
// only counted; otherwise a new archive is built from the list beside the
// old one and swapped in once the whole snapshot has been read, so a
// corrupt snapshot leaves the archive as it was.
type archiveRestore struct {
	// cur is the archive of the Machine being restored (nil: none).
	cur *Archive
	// temp builds into a new temporary directory (ReadSnapshot).
	temp    bool
	tempDir string

	hdr    *archiveHeader
	keep   bool
	built  *archiveBuilder
	seen   map[Status]int
	lastID int64
}

func (m *Machine) decodeArchiveHeader(dec *json.Decoder) error {
	ar := m.restoring
	if ar == nil || ar.cur == nil && !ar.temp {
		return errors.New("the snapshot holds archived tasks, and this state has no archive to put them in")
	}
	if ar.hdr != nil {
		return errors.New("a second archive header")
	}
	var h archiveHeader
	if err := dec.Decode(&h); err != nil {
		return err
	}
	if h.Counts == nil {
		h.Counts = map[Status]int{}
	}
	for st, n := range h.Counts {
		if !st.Final() || n < 0 {
			return fmt.Errorf("archive counts: %d tasks %q (only final statuses, counted from 0)", n, st)
		}
		if n == 0 {
			delete(h.Counts, st)
		}
	}
	ar.hdr, ar.seen = &h, map[Status]int{}
	if ar.cur != nil {
		meta, err := ar.cur.meta()
		if err == nil && meta.index == h.Index && maps.Equal(nonZero(meta.counts), h.Counts) {
			ar.keep = true
			return nil
		}
	}
	path := ""
	if ar.temp {
		dir, err := os.MkdirTemp("", "hakuriver-archive-")
		if err != nil {
			return fmt.Errorf("temporary archive: %w", err)
		}
		ar.tempDir, path = dir, filepath.Join(dir, "archive.db")
	} else {
		path = restorePath(ar.cur.path)
	}
	b, err := newArchiveBuilder(path)
	if err != nil {
		return err
	}
	ar.built = b
	return nil
}

func nonZero(c map[Status]int) map[Status]int {
	out := make(map[Status]int, len(c))
	for st, n := range c {
		if n != 0 {
			out[st] = n
		}
	}
	return out
}

// decodeArchived reads the "archived" list: each task is checked (an ID
// above the previous one, a final status, not also in memory) and, unless
// the current archive is kept, stored in the new one.
func (m *Machine) decodeArchived(dec *json.Decoder) error {
	ar := m.restoring
	if ar == nil || ar.hdr == nil {
		return errors.New("archived tasks before the archive header")
	}
	if err := expectDelim(dec, '['); err != nil {
		return err
	}
	for dec.More() {
		var t Task
		if ar.keep {
			// Only checked: the fields that matter, not a whole task.
			var head struct {
				TaskID int64  `json:"task_id,string"`
				Status Status `json:"status"`
			}
			if err := dec.Decode(&head); err != nil {
				return err
			}
			t.TaskID, t.Status = head.TaskID, head.Status
		} else if err := dec.Decode(&t); err != nil {
			return err
		}
		if t.TaskID <= ar.lastID {
			return fmt.Errorf("archived task %d: IDs must ascend", t.TaskID)
		}
		if !t.Status.Final() {
			return fmt.Errorf("archived task %d: status %q is not final", t.TaskID, t.Status)
		}
		if _, dup := m.tasks[t.TaskID]; dup {
			return fmt.Errorf("task %d: both in memory and archived", t.TaskID)
		}
		ar.lastID = t.TaskID
		ar.seen[t.Status]++
		m.maxID = max(m.maxID, t.TaskID)
		if ar.keep {
			continue
		}
		if err := ar.built.add(&t); err != nil {
			return err
		}
	}
	return expectDelim(dec, ']')
}

// done finishes the archive once the snapshot is read: the counts must be
// the header's; a snapshot without archive empties a non-empty one.
func (ar *archiveRestore) done() error {
	if ar.hdr == nil {
		ar.hdr = &archiveHeader{Counts: map[Status]int{}}
		if ar.cur == nil {
			return nil
		}
		meta, err := ar.cur.meta()
		if err == nil && meta.index == 0 && meta.total() == 0 {
			ar.keep = true
			return nil
		}
		if ar.built, err = newArchiveBuilder(restorePath(ar.cur.path)); err != nil {
			return err
		}
		return ar.built.finish(0)
	}
	if !maps.Equal(ar.seen, ar.hdr.Counts) {
		return fmt.Errorf("archived tasks %v do not match the archive header's counts %v", ar.seen, ar.hdr.Counts)
	}
	if ar.keep {
		return nil
	}
	if ar.built == nil {
		return errors.New("the archive header is not followed by the archived tasks")
	}
	return ar.built.finish(ar.hdr.Index)
}

// discard removes what a failed restore built.
func (ar *archiveRestore) discard() {
	if ar.built != nil {
		ar.built.discard()
		ar.built = nil
	}
	removeTemp(ar.tempDir)
}

// removeTemp removes a temporary archive directory ("" = none).
func removeTemp(dir string) {
	if dir != "" {
		os.RemoveAll(dir) //nolint:errcheck // best effort: a temporary directory
	}
}
