//go:build integration

package chaos

import (
	"time"
)

// Latency adds 20–200 ms (drawn by the seed) each way to every TCP
// connection between one member and the others: the leader or, as often,
// a member drawn by the seed (a replica or the runner). Raft, the API
// calls between members (forwarding, runner reports) and memberlist's TCP
// go through a delaying relay in the namespaces (Bridge.Delay: this kernel
// has no sch_netem); memberlist's UDP probes and the clients' own calls
// are not delayed. Nobody is cut off, so there is no minority: every write
// is a majority write. Heal removes the rules and the relays.
func Latency() Fault {
	return Fault{Name: "latency 20-200 ms on one member",
		Inject: func(e *Env) ([]string, []string, error) {
			d := []time.Duration{20, 50, 100, 200}[e.rng.IntN(4)] * time.Millisecond
			m, who := e.leaderID()
			who = "leader " + who
			if e.rng.IntN(2) == 0 {
				m = e.rng.IntN(e.C.N() + 1)
				who = "runner " + RunnerName
				if m < e.C.N() {
					who = "replica " + e.C.Replica(m).ID
				}
			}
			e.TB.Logf("latency %s each way on every TCP link of %s", d, who)
			return nil, nil, e.Net.Delay(m, d)
		},
		Heal: func(e *Env) error { return e.Net.Heal() },
	}
}
