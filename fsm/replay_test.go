package fsm_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// genEntries produces a reproducible log of n entries mixing every command
// type, with many that must be rejected (unknown IDs, impossible moves,
// duplicate IDs, retried request IDs, ignorable future entries).
func genEntries(t testing.TB, seed uint64, n int) [][]byte {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	nodes := []string{"n0", "n1", "n2", "n3", "n4", "ghost"}
	id := func() int64 { return 1 + rng.Int64N(400) }
	node := func() string { return nodes[rng.IntN(len(nodes))] }
	statuses := append(fsm.AllStatuses(), "bogus")
	out := make([][]byte, 0, n)
	acct := accountGen{rng: rng}
	for i := range n {
		now := at(i)
		var c fsm.Command
		switch p := rng.IntN(112); {
		case p >= 100:
			c = acct.command(now)
		case p < 20:
			s := &fsm.SubmitTasks{}
			if rng.IntN(2) == 0 {
				s.RequestID = fmt.Sprintf("r%d", rng.IntN(40))
			}
			batch := id()
			for range rng.IntN(4) { // sometimes empty
				tk := newTask(id())
				tk.BatchID = batch
				tk.SubmittedAt = now
				if rng.IntN(3) == 0 {
					tk.TaskType = fsm.TaskVPS
				}
				if rng.IntN(4) == 0 {
					tk.TargetNode = node()
				}
				s.Tasks = append(s.Tasks, tk)
			}
			c = s
		case p < 45:
			u := &fsm.UpdateTask{TaskID: id(), Status: statuses[rng.IntN(len(statuses))], At: now}
			if rng.IntN(2) == 0 {
				u.ExitCode = intp(rng.IntN(3) - 1)
			}
			if rng.IntN(3) == 0 {
				u.Message = strp(fmt.Sprintf("m%d", i))
			}
			if rng.IntN(5) == 0 {
				u.SSHPort = 20000 + rng.IntN(100)
			}
			if rng.IntN(6) == 0 {
				u.StartedAt = timep(at(i - 1))
			}
			c = u
		case p < 52:
			c = &fsm.KillTask{TaskID: id(), Message: "Kill requested by user.", At: now}
		case p < 58:
			nd := testNode(node())
			nd.TotalCores = 1 + rng.IntN(64)
			c = &fsm.RegisterNode{Node: nd, At: now}
		case p < 66:
			st := fsm.NodeOnline
			if rng.IntN(2) == 0 {
				st = fsm.NodeOffline
			}
			if rng.IntN(20) == 0 {
				st = "weird"
			}
			c = &fsm.SetNodeStatus{Hostname: node(), Status: st, At: now}
		case p < 90:
			a := &fsm.AssignTask{TaskID: id(), Node: node(), At: now}
			if rng.IntN(2) == 0 {
				a.GPUs = []int{rng.IntN(2)}
			}
			if rng.IntN(2) == 0 {
				a.NUMA = intp(rng.IntN(2))
			}
			c = a
		case p < 95:
			c = &fsm.SetNodeDrain{Hostname: node(), Drained: rng.IntN(2) == 0}
		default:
			// Entries of future command types marked ignorable; anything
			// else unreadable halts a replica (TestApplyUnreadableEntryHalts).
			junk := [][]byte{{0x99, '{', '}'}, {0x80}, {0xff, 'x', 0}}
			out = append(out, junk[rng.IntN(len(junk))])
			continue
		}
		if rng.IntN(6) == 0 {
			// An audit envelope with the leader's bounds of the moment.
			keep, maxAge := []int{0, 3, 50}[rng.IntN(3)], []time.Duration{0, 30 * time.Second, time.Hour}[rng.IntN(3)]
			rec := fsm.AuditRecord{At: now, User: acct.name(), Role: fsm.Roles()[rng.IntN(4)], Via: node(), RequestID: fmt.Sprintf("q%d", i)}
			a, err := fsm.Wrap(c, rec, keep, maxAge)
			if err != nil {
				t.Fatal(err)
			}
			c = a
		}
		out = append(out, encode(t, c))
	}
	return out
}

// accountGen makes random account commands over a small name space, so
// that many collide: duplicates, unknown names, last-admin removals,
// second bootstraps, tokens of missing users, revocations of unknown IDs.
type accountGen struct {
	rng *rand.Rand
}

func (g *accountGen) name() string {
	return []string{"root", "alice", "bob", "carol", "dave"}[g.rng.IntN(5)]
}

func (g *accountGen) tokenID() string { return fmt.Sprintf("%08x", g.rng.IntN(12)) }

func (g *accountGen) command(now time.Time) fsm.Command {
	rng := g.rng
	switch rng.IntN(8) {
	case 0:
		if rng.IntN(4) != 0 {
			return &fsm.RevokeToken{ID: g.tokenID()}
		}
		return &fsm.BootstrapAuth{Admin: &fsm.User{Name: "root", Role: fsm.RoleAdmin, CreatedAt: now}, Token: testToken(g.tokenID(), "root")}
	case 1, 2:
		u := &fsm.User{Name: g.name(), Role: fsm.Roles()[rng.IntN(4)], CreatedAt: now}
		if rng.IntN(3) == 0 {
			u.Groups = []string{"g" + fmt.Sprint(rng.IntN(3))}
		}
		if rng.IntN(10) == 0 {
			u.Role = "root" // invalid
		}
		return &fsm.PutUser{User: u, Create: rng.IntN(2) == 0}
	case 3:
		return &fsm.RemoveUser{Name: g.name()}
	case 4:
		if rng.IntN(2) == 0 {
			return &fsm.RemoveGroup{Name: "g" + fmt.Sprint(rng.IntN(3))}
		}
		return &fsm.PutGroup{Group: &fsm.Group{Name: "g" + fmt.Sprint(rng.IntN(3)), Policy: fsm.Policy{Mounts: rng.IntN(2) == 0}, CreatedAt: now}, Create: rng.IntN(2) == 0}
	case 5, 6:
		tk := testToken(g.tokenID(), g.name())
		if rng.IntN(3) == 0 {
			tk.ExpiresAt = timep(now.Add(time.Duration(rng.IntN(100)) * time.Second))
		}
		return &fsm.CreateToken{Token: tk}
	}
	return &fsm.RevokeToken{ID: g.tokenID()}
}

// applyAll applies entries one by one from index first and returns the
// rendered results.
func applyAll(m *fsm.Machine, first uint64, entries [][]byte) []string {
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = resultKey(m.Apply(first+uint64(i), e))
	}
	return out
}

// checkInvariants verifies properties every state reachable through Apply
// must have.
func checkInvariants(t testing.TB, m *fsm.Machine) {
	t.Helper()
	checkCounts(t, m)
	all, _ := m.Tasks(fsm.Filter{}, 0, 0)
	for _, tk := range all {
		switch tk.Status {
		case fsm.StatusPending:
			if tk.AssignedNode != "" {
				t.Errorf("pending task %d assigned to %q", tk.TaskID, tk.AssignedNode)
			}
		case fsm.StatusAssigning, fsm.StatusRunning, fsm.StatusPaused:
			// (An assigning task may have no node: UpdateTask allows
			// pending → assigning without a placement, see CanMoveTo.)
			if tk.Status != fsm.StatusAssigning && tk.StartedAt == nil {
				t.Errorf("%s task %d has no started_at", tk.Status, tk.TaskID)
			}
			if tk.AssignedNode != "" {
				n, ok := m.Node(tk.AssignedNode)
				if !ok || n.Status != fsm.NodeOnline {
					t.Errorf("%s task %d sits on node %q which is not online (%v)", tk.Status, tk.TaskID, tk.AssignedNode, n)
				}
			}
		default:
			if tk.CompletedAt == nil {
				t.Errorf("final task %d (%s) has no completed_at", tk.TaskID, tk.Status)
			}
		}
	}
}

func TestReplayDeterminism(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			entries := genEntries(t, seed, 3000)

			m1 := fsm.New()
			r1 := applyAll(m1, 1, entries)
			want := snapshotBytes(t, m1)
			checkInvariants(t, m1)
			checkRepeatedRequests(t, entries)

			// The log must exercise both outcomes of every command type
			// (the commands inside audit envelopes count too).
			accepted, rejected := map[byte]int{}, map[byte]int{}
			innerAcc := map[fsm.CommandType]int{}
			for i, e := range entries {
				if len(e) == 0 {
					continue
				}
				types := []byte{e[0]}
				if c, ok, err := fsm.Decode(e); err == nil && ok {
					if a, isA := c.(*fsm.Audited); isA {
						types = append(types, a.Command[0])
					}
				}
				ok := bytes.HasSuffix([]byte(r1[i]), []byte("| <nil>"))
				for _, ty := range types {
					if ok {
						accepted[ty]++
					} else {
						rejected[ty]++
					}
				}
				if ok && len(types) == 2 {
					innerAcc[fsm.CommandType(types[1])]++
				}
			}
			for ct := fsm.CmdSubmitTasks; ct <= fsm.CmdAudited; ct++ {
				if ct == fsm.CmdSetEnvironment || ct == fsm.CmdSetClusterID {
					continue // not generated
				}
				if accepted[byte(ct)] == 0 || (ct != fsm.CmdRegisterNode && rejected[byte(ct)] == 0) {
					t.Errorf("%s: %d accepted, %d rejected: generator too weak", ct, accepted[byte(ct)], rejected[byte(ct)])
				}
			}
			for _, ct := range []fsm.CommandType{fsm.CmdPutUser, fsm.CmdCreateToken, fsm.CmdRevokeToken, fsm.CmdSubmitTasks} {
				if innerAcc[ct] == 0 {
					t.Errorf("no accepted audited %s: generator too weak", ct)
				}
			}
			if recs, _ := m1.Audit(fsm.AuditFilter{}, 1<<20); len(recs) == 0 || len(m1.Users()) < 2 || len(m1.Tokens("")) == 0 {
				t.Errorf("final state: %d audit records, %d users, %d tokens: generator too weak", len(recs), len(m1.Users()), len(m1.Tokens("")))
			}
			t.Logf("accepted %v rejected %v counts %v", accepted, rejected, m1.Counts())

			// A second replica applying the same log.
			m2 := fsm.New()
			r2 := applyAll(m2, 1, entries)
			for i := range r1 {
				if r1[i] != r2[i] {
					t.Fatalf("entry %d: result %q vs %q", i, r1[i], r2[i])
				}
			}
			if got := snapshotBytes(t, m2); !bytes.Equal(got, want) {
				assertSameState(t, "second replica", want, got)
			}

			// ApplyBatch with uneven batch sizes.
			m3 := fsm.New()
			rng := rand.New(rand.NewPCG(seed, 7))
			for i := 0; i < len(entries); {
				n := min(len(entries)-i, 1+rng.IntN(64))
				idx := make([]uint64, n)
				for k := range idx {
					idx[k] = uint64(i + k + 1)
				}
				res := m3.ApplyBatch(idx, entries[i:i+n])
				if len(res) != n {
					t.Fatalf("ApplyBatch returned %d results for %d entries", len(res), n)
				}
				for k, r := range res {
					if got := resultKey(r); got != r1[i+k] {
						t.Fatalf("entry %d in a batch: result %q, one by one %q", i+k, got, r1[i+k])
					}
				}
				i += n
			}
			if got := snapshotBytes(t, m3); !bytes.Equal(got, want) {
				assertSameState(t, "ApplyBatch replica", want, got)
			}

			// A replica that installs a snapshot half way and replays the rest.
			half := len(entries) / 2
			m4 := fsm.New()
			applyAll(m4, 1, entries[:half])
			m5 := fsm.New()
			if err := m5.Restore(bytes.NewReader(snapshotBytes(t, m4))); err != nil {
				t.Fatal(err)
			}
			r5 := applyAll(m5, uint64(half+1), entries[half:])
			for i := range r5 {
				if r5[i] != r1[half+i] {
					t.Fatalf("entry %d after restore: result %q vs %q", half+i, r5[i], r1[half+i])
				}
			}
			if got := snapshotBytes(t, m5); !bytes.Equal(got, want) {
				assertSameState(t, "snapshot + replay replica", want, got)
			}
		})
	}
}

// checkRepeatedRequests applies entries to a fresh machine and checks that
// every submit repeating an accepted request ID gets the first answer's
// task IDs, marked duplicate, and creates nothing.
func checkRepeatedRequests(t *testing.T, entries [][]byte) {
	t.Helper()
	m := fsm.New()
	first := map[string][]int64{}
	repeats := 0
	for i, e := range entries {
		c, ok, err := fsm.Decode(e)
		sub, isSubmit := c.(*fsm.SubmitTasks)
		before := m.Len()
		res := m.Apply(uint64(i+1), e)
		if err != nil || !ok || !isSubmit || sub.RequestID == "" {
			continue
		}
		ids, seen := first[sub.RequestID]
		if !seen {
			if v, accepted := res.Value.(fsm.SubmitResult); accepted && res.Err == nil {
				first[sub.RequestID] = v.TaskIDs
			}
			continue
		}
		repeats++
		v, _ := res.Value.(fsm.SubmitResult)
		if res.Err != nil || !v.Duplicate || fmt.Sprint(v.TaskIDs) != fmt.Sprint(ids) || m.Len() != before {
			t.Fatalf("entry %d repeats request %q: result %+v (err %v), %d→%d tasks; first answer %v",
				i, sub.RequestID, v, res.Err, before, m.Len(), ids)
		}
	}
	if repeats < 50 {
		t.Fatalf("only %d repeated request IDs: generator too weak", repeats)
	}
}

func TestApplyBatchEmpty(t *testing.T) {
	m := fsm.New()
	if res := m.ApplyBatch(nil, nil); len(res) != 0 {
		t.Fatalf("ApplyBatch(nil) = %v", res)
	}
	if m.AppliedIndex() != 0 {
		t.Fatalf("AppliedIndex = %d", m.AppliedIndex())
	}
}
