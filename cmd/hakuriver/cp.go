package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/runner/filecopy"
)

// taskPath is an "ID:PATH" argument of `hakuriver cp`.
type taskPath struct {
	ref, path string
}

// parseTaskPath reads "ID:PATH" (ID a task ID or name); ok is false for a
// local path (one with a "/" before its first ":", or no ":").
func parseTaskPath(s string) (taskPath, bool) {
	ref, p, ok := strings.Cut(s, ":")
	if !ok || ref == "" || strings.Contains(ref, "/") || p == "" {
		return taskPath{}, false
	}
	if _, err := strconv.ParseInt(ref, 10, 64); err != nil && !fsm.ValidTaskName(ref) {
		return taskPath{}, false
	}
	return taskPath{ref: ref, path: p}, true
}

// copyResult is what `hakuriver cp --output json` prints.
type copyResult struct {
	TaskID    string `json:"task_id"`
	Direction string `json:"direction"` // "to" or "from" the task
	Local     string `json:"local"`
	Path      string `json:"path"`
	Bytes     int64  `json:"bytes"`
}

func newCpCmd(g *clientFlags) *cobra.Command {
	var maxBytes int64
	cmd := &cobra.Command{
		Use:   "cp LOCAL ID:PATH | ID:PATH LOCAL",
		Short: "Copy files and directories into or out of a running task or VPS",
		Long: `Copy a file or a directory tree into or out of a running task or VPS, as a
tar stream through a host replica and the task's runner; mode bits are
kept. As with cp, a destination that is an existing directory receives
the copy under its own name; any other destination is the copy's new
name. PATH is absolute, or relative to the task's working directory.

Docker tasks and VPS are reached through the Docker Engine's archive API;
for a native task the runner reads and writes as the task's own user, so
that user's permissions apply. Archives are checked on both ends: no
absolute or ".." names, no symbolic link leading out of the copy, only
files, directories and links, within a size cap.

Only the task's owner or an operator may copy; every copy is recorded in
the audit log (who, task, path, when, how long), never its contents.`,
		Example: `  hakuriver cp ./data 1234:/tmp/        # a directory into task 1234
  hakuriver cp 1234:results.csv .        # a file from its working directory`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := g.format()
			if err != nil {
				return err
			}
			src, srcTask := parseTaskPath(args[0])
			dst, dstTask := parseTaskPath(args[1])
			if srcTask == dstTask {
				return fmt.Errorf("want exactly one of LOCAL and ID:PATH on each side, got %q and %q", args[0], args[1])
			}
			c, err := newCopier(cmd.Context(), g, maxBytes)
			if err != nil {
				return err
			}
			var res copyResult
			if dstTask {
				res, err = c.put(cmd.Context(), args[0], dst)
			} else {
				res, err = c.get(cmd.Context(), src, args[1])
			}
			if err != nil {
				return err
			}
			if format == outputJSON {
				return printJSON(cmd.OutOrStdout(), res)
			}
			if res.Direction == "to" {
				fmt.Fprintf(cmd.OutOrStdout(), "Copied %s to task %s:%s (%d bytes)\n", res.Local, res.TaskID, res.Path, res.Bytes)
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "Copied task %s:%s to %s (%d bytes)\n", res.TaskID, res.Path, res.Local, res.Bytes)
			}
			return nil
		},
	}
	cmd.Flags().Int64Var(&maxBytes, "max-bytes", filecopy.DefaultMaxBytes, "refuse a copy from a task whose files exceed this many bytes")
	return cmd
}

// copier runs the exchanges of one `hakuriver cp`.
type copier struct {
	g      *clientFlags
	hosts  []string
	hc     *http.Client
	bearer string
	lim    filecopy.Limits
}

func newCopier(ctx context.Context, g *clientFlags, maxBytes int64) (*copier, error) {
	cfg, err := g.clientConfig("")
	if err != nil {
		return nil, err
	}
	hosts, err := api.ParseHosts(cfg.Hosts...)
	if err != nil {
		return nil, fmt.Errorf("invalid --host: %w", err)
	}
	tr := &http.Transport{TLSClientConfig: cfg.TLS, ResponseHeaderTimeout: 0,
		DialContext: (&net.Dialer{Timeout: cfg.DialTimeout}).DialContext}
	return &copier{g: g, hosts: hosts, hc: &http.Client{Transport: tr}, bearer: cfg.Bearer,
		lim: filecopy.Limits{MaxBytes: maxBytes}}, nil
}

func filesURL(host, id, p string) string {
	return host + "/api/task/" + url.PathEscape(id) + "/files?path=" + url.QueryEscape(p)
}

// send runs one exchange against the first replica that answers; body
// (nil: none) is built anew for each attempt. A non-2xx answer is an
// *api.APIError.
func (c *copier) send(ctx context.Context, method, id, p string, body func() (io.Reader, func())) (*http.Response, error) {
	var last error
	for _, h := range c.hosts {
		var rd io.Reader
		done := func() {}
		if body != nil {
			rd, done = body()
		}
		req, err := http.NewRequestWithContext(ctx, method, filesURL(h, id, p), rd)
		if err != nil {
			done()
			return nil, err
		}
		if c.bearer != "" {
			req.Header.Set("Authorization", "Bearer "+c.bearer)
		}
		req.Header.Set("User-Agent", "hakuriver-cli")
		resp, err := c.hc.Do(req)
		done()
		if err != nil {
			last = err
			var oe *net.OpError
			if errors.As(err, &oe) && oe.Op == "dial" {
				continue // this replica is down: the next one
			}
			return nil, err
		}
		if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
			return resp, nil
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16)) //nolint:errcheck // a partial body still has the message
		resp.Body.Close()
		err = &api.APIError{StatusCode: resp.StatusCode, Message: api.ErrorMessage(b), Host: req.URL.Host}
		if resp.StatusCode == http.StatusServiceUnavailable {
			last = err
			continue
		}
		return nil, err
	}
	return nil, fmt.Errorf("%w: %w", api.ErrNoReplica, last)
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// put copies local into the task at dst.
func (c *copier) put(ctx context.Context, local string, dst taskPath) (copyResult, error) {
	if _, err := os.Lstat(local); err != nil {
		return copyResult{}, fmt.Errorf("copy %s: %w", local, err)
	}
	id, err := resolveTaskID(ctx, c.g, dst.ref)
	if err != nil {
		return copyResult{}, err
	}
	var counted *countingReader
	body := func() (io.Reader, func()) {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(filecopy.Archive(pw, local, "")) }()
		counted = &countingReader{r: pr}
		return counted, func() {}
	}
	resp, err := c.send(ctx, http.MethodPut, id, dst.path, body)
	if err != nil {
		return copyResult{}, fmt.Errorf("copy %s to task %s:%s: %w", local, id, dst.path, err)
	}
	resp.Body.Close()
	return copyResult{TaskID: id, Direction: "to", Local: local, Path: dst.path, Bytes: counted.n}, nil
}

// get copies src out of the task to local.
func (c *copier) get(ctx context.Context, src taskPath, local string) (copyResult, error) {
	id, err := resolveTaskID(ctx, c.g, src.ref)
	if err != nil {
		return copyResult{}, err
	}
	fi, statErr := os.Stat(local)
	dir, rename := filecopy.Destination(local, statErr == nil && fi.IsDir())
	if _, err := os.Stat(dir); err != nil {
		return copyResult{}, fmt.Errorf("copy to %s: %w", local, err)
	}
	resp, err := c.send(ctx, http.MethodGet, id, src.path, nil)
	if err != nil {
		return copyResult{}, fmt.Errorf("copy task %s:%s: %w", id, src.path, err)
	}
	defer resp.Body.Close()
	counted := &countingReader{r: resp.Body}
	if _, err := filecopy.Extract(dir, counted, c.lim, rename); err != nil {
		return copyResult{}, fmt.Errorf("copy task %s:%s to %s: %w", id, src.path, local, err)
	}
	return copyResult{TaskID: id, Direction: "from", Local: local, Path: src.path, Bytes: counted.n}, nil
}
