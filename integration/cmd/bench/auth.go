//go:build integration

package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/cluster/auth"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// authRounds is how many rounds the section makes. In each round the two
// modes run at the same time, half the clients each, so that both see the
// same machine (whose load other processes and the growing FSM change
// from one second to the next); the ratio reported is the median of the
// rounds' ratios.
const authRounds = 3

// authRun is one closed-loop run with or without a token.
type authRun struct {
	mode string
	load
}

// authResult is the auth section's outcome.
type authResult struct {
	clients int
	runs    []authRun
	// checkNs is the in-process cost of Authenticator.Check with a bearer
	// token against a Machine holding checkTokens tokens.
	checkNs     float64
	checkAllocs int64
	checkTokens int
}

// authSection measures submit throughput through the leader of one
// cluster whose anonymous role is user: with a user's bearer token
// ("auth on": hash, lookup, role check) and without any ("auth off": the
// original's open API), alternating, and the per-request cost of the
// token check itself.
func authSection(out io.Writer, root *scope, bin string, s settings) {
	sc := root.child("auth")
	defer sc.close()
	c := harness.StartCluster(sc, harness.Options{Bin: bin, Replicas: 3, LogLevel: "warn", AnonymousRole: "user"})
	leader := c.WaitLeader(harness.LeaderTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), harness.WriteTimeout)
	defer cancel()
	if a, err := c.CallAs(ctx, leader, http.MethodPost, "/api/users", c.AdminToken(), api.UserRequest{Name: "bench", Role: fsm.RoleUser}); err != nil || a.Status != http.StatusCreated {
		sc.Fatalf("create user: %v %s", err, a)
	}
	a, err := c.CallAs(ctx, leader, http.MethodPost, "/api/tokens", c.AdminToken(), api.TokenRequest{User: "bench", Name: "bench"})
	var tr api.TokenResponse
	if err != nil || a.Status != http.StatusCreated || a.Decode(&tr) != nil {
		sc.Fatalf("create token: %v %s", err, a)
	}
	res := authResult{clients: 8}
	submitLoadAs(c, leader, 2*res.clients, time.Second, 8*res.clients, "warmup", tr.Token)
	submitLoadAs(c, leader, 2*res.clients, time.Second, 8*res.clients, "warmup", "")
	for range authRounds {
		var off, on load
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			off = submitLoadAs(c, leader, res.clients, s.duration, s.maxRequests/2, "auth-off", "")
		}()
		go func() {
			defer wg.Done()
			on = submitLoadAs(c, leader, res.clients, s.duration, s.maxRequests/2, "auth-on", tr.Token)
		}()
		wg.Wait()
		res.runs = append(res.runs, authRun{"off (anonymous user)", off}, authRun{"on (bearer token)", on})
	}
	res.checkTokens = 1000
	br := benchCheck(res.checkTokens)
	res.checkNs, res.checkAllocs = float64(br.NsPerOp()), br.AllocsPerOp()
	printAuth(out, s, res)
}

// benchCheck times auth.Authenticator.Check of a user's bearer token
// against a real fsm.Machine holding n tokens (as BenchmarkCheck in
// cluster/auth).
func benchCheck(n int) testing.BenchmarkResult {
	m := fsm.New()
	idx := uint64(0)
	apply := func(c fsm.Command) {
		data, err := fsm.Encode(c)
		if err != nil {
			panic(err)
		}
		idx++
		if r := m.Apply(idx, data); r.Err != nil {
			panic(r.Err)
		}
	}
	now := time.Now()
	_, boot, err := auth.NewToken("root", "", now, 0)
	if err != nil {
		panic(err)
	}
	apply(&fsm.BootstrapAuth{Admin: &fsm.User{Name: "root", Role: fsm.RoleAdmin}, Token: boot})
	var reqs []*http.Request
	for i := range n {
		name := fmt.Sprintf("u%d", i%100)
		if _, ok := m.User(name); !ok {
			apply(&fsm.PutUser{User: &fsm.User{Name: name, Role: fsm.RoleUser}, Create: true})
		}
		secret, tok, err := auth.NewToken(name, "bench", now, 24*time.Hour)
		if err != nil {
			panic(err)
		}
		apply(&fsm.CreateToken{Token: tok})
		r := httptest.NewRequest(http.MethodPost, "http://h1/api/submit", nil)
		r.Header.Set("Authorization", "Bearer "+secret)
		reqs = append(reqs, r)
	}
	a := &auth.Authenticator{Accounts: m, ClusterToken: "cluster"}
	rule := auth.Rule{Role: fsm.RoleUser}
	return testing.Benchmark(func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := a.Check(rule, reqs[i%len(reqs)]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func printAuth(out io.Writer, s settings, r authResult) {
	fmt.Fprintf(out, "Authentication: POST /api/submit through the leader of one cluster (anonymous_role = user), closed loop; each round runs both modes at once, %d clients each, <= %s or %d requests each; %d cores\n",
		r.clients, s.duration, s.maxRequests/2, runtime.NumCPU())
	tw := table(out)
	fmt.Fprintln(tw, "round\tauth\trequests\t202\ttasks/s\tp50 ms\tp99 ms\tfirst error\t")
	var on, off float64
	var ratios []float64
	for k, run := range r.runs {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%.0f\t%.1f\t%.1f\t%s\t\n", k/2+1, run.mode, run.sent, run.ok, run.perSecond(),
			msf(run.pct(0.50)), msf(run.pct(0.99)), orDash(run.firstErr))
		if k%2 == 1 {
			if p := r.runs[k-1].perSecond(); p > 0 {
				ratios = append(ratios, run.perSecond()/p)
			}
		}
		if run.mode[:2] == "on" {
			on += run.perSecond()
		} else {
			off += run.perSecond()
		}
	}
	tw.Flush() //nolint:errcheck // stdout
	shown := fmtRatios(ratios)
	slices.Sort(ratios)
	median := 0.0
	if n := len(ratios); n > 0 {
		median = (ratios[(n-1)/2] + ratios[n/2]) / 2
	}
	total := 0.0
	if off > 0 {
		total = on / off
	}
	verdict := "meets"
	if median < 0.95 {
		verdict = "BELOW"
	}
	fmt.Fprintf(out, "throughput with auth / without: median of %d rounds %.3f (%s the 0.95 target), rounds %s, all runs %.3f\n",
		len(ratios), median, verdict, shown, total)
	fmt.Fprintf(out, "token check (auth.Authenticator.Check, bearer, %d tokens in the FSM, in process): %.0f ns/op, %d allocs/op\n",
		r.checkTokens, r.checkNs, r.checkAllocs)
}

func fmtRatios(rs []float64) string {
	var parts []string
	for _, r := range rs {
		parts = append(parts, fmt.Sprintf("%.2f", r))
	}
	return strings.Join(parts, " ")
}
