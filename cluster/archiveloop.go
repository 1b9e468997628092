package cluster

import (
	"context"
	"errors"
	"time"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// historyRule is when the leader moves finished tasks to the archive.
type historyRule struct {
	// keep is the age (since completion) past which a finished task is
	// archived; 0: no age rule.
	keep time.Duration
	// keepTasks is how many finished tasks stay in memory, newest first;
	// 0: no count rule.
	keepTasks int
	// every is the period of the leader's look; batch bounds one entry.
	every time.Duration
	batch int
}

func (r historyRule) on() bool { return r.every > 0 && (r.keep > 0 || r.keepTasks > 0) }

// archiveBatch is the number of tasks one ArchiveTasks entry moves: applying
// it (encode, compress, one bbolt commit) takes a few tens of milliseconds,
// short enough not to hold up the submits applied after it.
const archiveBatch = 2000

// archivePause separates two archive entries of one look, so that a large
// backlog is moved without a long run of entries that submits wait behind.
const archivePause = 50 * time.Millisecond

// archiveRounds bounds the entries of one look (a backlog of 1,000,000
// tasks takes a few looks).
const archiveRounds = 200

// archiveLoop moves finished tasks beyond the retention to the archive, once
// every history.every, in bounded entries. Until every replica knows
// ArchiveTasks it proposes nothing (tasks then stay in memory).
func (l *leader) archiveLoop(ctx context.Context) {
	if !l.history.on() {
		return
	}
	tick := time.NewTicker(l.history.every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		l.archiveOnce(ctx)
	}
}

// archiveOnce proposes ArchiveTasks entries until nothing is left to
// archive (or archiveRounds). It returns the number of tasks moved.
func (l *leader) archiveOnce(ctx context.Context) int {
	if l.known(fsm.CmdArchiveTasks) != nil {
		return 0
	}
	batch := l.history.batch
	if batch <= 0 || batch > fsm.MaxArchiveBatch {
		batch = archiveBatch
	}
	keep := -1
	if l.history.keepTasks > 0 {
		keep = l.history.keepTasks
	}
	moved := 0
	for range archiveRounds {
		now := l.now()
		var cutoff time.Time
		if l.history.keep > 0 {
			cutoff = now.Add(-l.history.keep)
		}
		ids := l.state.ArchiveCandidates(cutoff, keep, batch)
		if len(ids) == 0 {
			break
		}
		res, err := l.apply(ctx, &fsm.ArchiveTasks{TaskIDs: ids, At: now.UTC()})
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, ErrNotLeader) {
				l.log.Warn("archive finished tasks", "tasks", len(ids), "err", err)
			}
			break
		}
		if r, ok := res.(fsm.ArchiveResult); ok {
			moved += r.Moved
		}
		if len(ids) < batch {
			break
		}
		select {
		case <-ctx.Done():
			return moved
		case <-time.After(archivePause):
		}
	}
	if moved > 0 {
		st := l.state.ArchiveStats()
		l.log.Info("archived finished tasks", "moved", moved, "archived", st.Tasks, "in_memory", l.state.MemoryTasks(), "archive_bytes", st.Bytes)
	}
	return moved
}
