package cluster

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkSubmit16 submits b.N one-task requests with 16 concurrent
// clients to the leader of 3 in-process replicas (real Raft, boltdb files,
// fsync on, real HTTP on loopback): the whole submit path, for CPU
// profiles (`go test -run '^$' -bench Submit16 -cpuprofile cpu.out
// ./cluster`). The three replicas share the machine's cores (and disk) as
// they do in `make bench`. The nosync case turns the Raft log's fsync off:
// the difference is what the shared disk costs.
func BenchmarkSubmit16(b *testing.B) {
	for _, c := range []struct {
		name   string
		noSync bool
	}{{"fsync", false}, {"nosync", true}} {
		b.Run(c.name, func(b *testing.B) {
			benchSubmit16(b, startClusterWith(b, 3, func(_ int, cfg *Config) { cfg.RaftNoSync = c.noSync }))
		})
	}
}

func benchSubmit16(b *testing.B, hosts []*Host) {
	var leader *Host
	waitFor(b, 15*time.Second, func() bool {
		for _, h := range hosts {
			if h.IsLeader() {
				leader = h
				return true
			}
		}
		return false
	})
	url := leader.APIURL() + "/api/submit"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var next, failed atomic.Int64
	b.ResetTimer()
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := next.Add(1); n <= int64(b.N); n = next.Add(1) {
				body := fmt.Sprintf(`{"command":"true","arguments":["%d","%d"]}`, w, n)
				req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader([]byte(body)))
				if err != nil {
					b.Error(err)
					return
				}
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body) //nolint:errcheck // drained so the connection is reused
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d of %d submits failed", f, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
}
