package doctor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultProbeTimeout bounds one probe when a Request names no timeout.
const DefaultProbeTimeout = 2 * time.Second

// Limits of a Request.
const (
	maxTargets      = 1024
	maxProbeTimeout = 30 * time.Second
	maxRequestBody  = 1 << 20
)

// Request is what a caller asks a member's doctor endpoint for. GET takes
// it from the query (ping=1, write_probe=1, probe_file, probe_token,
// probe_writer, timeout_ms, and target=kind,name,address repeated); POST takes
// it as a JSON body.
type Request struct {
	// Ping answers only who the member is, without any check: the cheap,
	// token-protected target of other members' http probes.
	Ping bool `json:"ping,omitempty"`
	// Targets are the paths this member opens, to probe.
	Targets []Target `json:"targets,omitempty"`
	// WriteProbe asks the member to write a shared-storage probe file into
	// its shared_dir (returned as Report.Probe).
	WriteProbe bool `json:"write_probe,omitempty"`
	// ReadProbe asks the member to read a probe back from its shared_dir.
	ReadProbe *ProbeFile `json:"read_probe,omitempty"`
	// TimeoutMS bounds each probe (DefaultProbeTimeout when 0).
	TimeoutMS int `json:"timeout_ms,omitempty"`
}

// Timeout returns the per-probe timeout of r.
func (r Request) Timeout() time.Duration {
	if r.TimeoutMS <= 0 {
		return DefaultProbeTimeout
	}
	return time.Duration(r.TimeoutMS) * time.Millisecond
}

// Validate checks r and names the first bad field.
func (r Request) Validate() error {
	if len(r.Targets) > maxTargets {
		return fmt.Errorf("targets: at most %d, got %d", maxTargets, len(r.Targets))
	}
	for i, t := range r.Targets {
		if !t.Kind.Valid() {
			return fmt.Errorf("targets[%d].kind: %q is not http, tcp or udp-gossip", i, t.Kind)
		}
		if t.Address == "" {
			return fmt.Errorf("targets[%d].address: required", i)
		}
	}
	if r.TimeoutMS < 0 || time.Duration(r.TimeoutMS)*time.Millisecond > maxProbeTimeout {
		return fmt.Errorf("timeout_ms: must be between 0 and %d", maxProbeTimeout.Milliseconds())
	}
	if r.ReadProbe != nil && !isProbeName(r.ReadProbe.Name) {
		return fmt.Errorf("read_probe.name: %q is not a doctor probe name", r.ReadProbe.Name)
	}
	return nil
}

// ParseRequest reads a Request from a GET query or a POST JSON body and
// validates it. Its error names the bad field (answer 400).
func ParseRequest(w http.ResponseWriter, r *http.Request) (Request, error) {
	var req Request
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		q := r.URL.Query()
		req.Ping = q.Get("ping") == "1" || q.Get("ping") == "true"
		req.WriteProbe = q.Get("write_probe") == "1" || q.Get("write_probe") == "true"
		if name := q.Get("probe_file"); name != "" {
			req.ReadProbe = &ProbeFile{Name: name, Token: q.Get("probe_token"), Writer: q.Get("probe_writer")}
		}
		if v := q.Get("timeout_ms"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				return Request{}, fmt.Errorf("timeout_ms %q: not an integer", v)
			}
			req.TimeoutMS = n
		}
		for _, v := range q["target"] {
			parts := strings.SplitN(v, ",", 3)
			if len(parts) != 3 {
				return Request{}, fmt.Errorf("target %q: want kind,name,address", v)
			}
			req.Targets = append(req.Targets, Target{Kind: Kind(parts[0]), Name: parts[1], Address: parts[2]})
		}
	case http.MethodPost:
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBody))
		if err := dec.Decode(&req); err != nil {
			return Request{}, fmt.Errorf("malformed doctor request body: %w", err)
		}
	default:
		return Request{}, errors.New("method: use GET or POST")
	}
	if err := req.Validate(); err != nil {
		return Request{}, err
	}
	return req, nil
}

// Run answers req on this member. rep carries the member's identity, its
// shared_dir, endpoints and peers, and any role-specific checks (Raft,
// gossip); Run adds the local checks of l, the probes of req.Targets (sent
// with l.Token), the shared-storage probe written or read back, and stamps
// Node on every check, Time and ElapsedMS. A ping answers the identity only.
// Local checks and probes run concurrently, bounded by ctx.
func Run(ctx context.Context, l Local, req Request, rep Report) Report {
	start := time.Now()
	if !req.Ping {
		extra := rep.Checks
		var local, probes []Check
		var resolved map[string][]string
		var wg sync.WaitGroup
		wg.Go(func() { local = RunLocal(ctx, l) })
		wg.Go(func() { probes, resolved = ProbeAll(ctx, WithTLS(req.Targets, l.TLS), req.Timeout(), l.Token) })
		wg.Wait()
		rep.Checks = append(append(local, extra...), probes...)
		if len(resolved) > 0 && rep.Resolved == nil {
			rep.Resolved = map[string][]string{}
		}
		for k, v := range resolved {
			rep.Resolved[k] = v
		}
		if req.WriteProbe {
			rep.Checks = append(rep.Checks, writeProbeCheck(&rep))
		}
		if p := req.ReadProbe; p != nil {
			c := ReadProbe(rep.SharedDir, p.Name, p.Token)
			if p.Writer != "" {
				c.Measured += " (written by " + p.Writer + " into its shared_dir)"
			}
			rep.Checks = append(rep.Checks, c)
		}
	}
	if rep.Checks == nil {
		rep.Checks = []Check{}
	}
	for i := range rep.Checks {
		rep.Checks[i].Node = rep.Node
		if rep.Checks[i].Status == StatusOK {
			rep.Checks[i].Cause = ""
		}
	}
	rep.Time = l.now()
	rep.ElapsedMS = float64(time.Since(start)) / float64(time.Millisecond)
	return rep
}

// writeProbeCheck writes a storage probe into rep.SharedDir and records it.
func writeProbeCheck(rep *Report) Check {
	const name = "shared storage write"
	if rep.SharedDir == "" {
		return failCheck(name, "no shared_dir configured", "set paths.shared_dir")
	}
	p, err := WriteProbe(rep.SharedDir)
	if err != nil {
		return failCheck(name, err.Error(), permCause(err, rep.SharedDir))
	}
	p.Writer = rep.Node
	rep.Probe = &p
	return okCheck(name, "wrote "+p.Name+" into "+rep.SharedDir)
}
