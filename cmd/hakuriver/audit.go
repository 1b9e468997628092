package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// maxAuditPage is the largest page the host serves.
const maxAuditPage = 1000

// auditFlags are the flags of "hakuriver audit".
type auditFlags struct {
	user  string
	since string
	limit int
	all   bool
}

// query checks the flags and returns the first page's query; now anchors
// a --since duration, once for every page.
func (f auditFlags) query(now time.Time) (api.AuditQuery, error) {
	q := api.AuditQuery{User: f.user}
	if f.since != "" {
		if t, err := time.Parse(time.RFC3339, f.since); err == nil {
			q.Since = t.UTC().Format(time.RFC3339Nano)
		} else if d, derr := time.ParseDuration(f.since); derr == nil && d > 0 {
			q.Since = now.Add(-d).UTC().Format(time.RFC3339Nano)
		} else {
			return q, fmt.Errorf("invalid --since %q: want a duration like 24h or an RFC 3339 time like 2026-01-02T15:04:05Z", f.since)
		}
	}
	if f.all {
		q.Limit = maxAuditPage
		return q, nil
	}
	if f.limit < 1 {
		return q, fmt.Errorf("invalid --limit %d: must be at least 1 (or give --all)", f.limit)
	}
	q.Limit = min(f.limit, maxAuditPage)
	return q, nil
}

func newAuditCmd(g *clientFlags) *cobra.Command {
	var f auditFlags
	cmd := &cobra.Command{
		Use:   "audit [--user U] [--since 24h|RFC3339] [--limit N] [--all]",
		Short: "Show who changed what, oldest first",
		Long: `Show the cluster's audit log, oldest first: every change a person asked for
(submits, kills, drains, environments, accounts, membership), who asked,
with which role, through which replica and with which request ID. Every
replica serves the same history.

Shows the first --limit records that match; --all pages through every one.`,
		Example: `  hakuriver audit --since 24h
  hakuriver audit --user bob --all -o json
  hakuriver audit --since 2026-01-02T00:00:00Z --limit 500`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q, err := f.query(time.Now())
			if err != nil {
				return err
			}
			return g.withClient(cmd, func(ctx context.Context, c *api.Client, format string) error {
				recs, err := auditRecords(ctx, c, q, f.limit, f.all)
				if err != nil {
					return err
				}
				if format == outputJSON {
					return printJSON(cmd.OutOrStdout(), recs)
				}
				return printAudit(cmd.OutOrStdout(), recs)
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.user, "user", "", "only the records of this account")
	fl.StringVar(&f.since, "since", "", "only records from this time on: a duration back from now (24h) or an RFC 3339 time")
	fl.IntVar(&f.limit, "limit", 100, "show at most this many records")
	fl.BoolVar(&f.all, "all", false, "show every matching record, paging through the log")
	return cmd
}

// auditRecords reads pages from q on until limit records (every one with
// all) or the end of the log.
func auditRecords(ctx context.Context, c *api.Client, q api.AuditQuery, limit int, all bool) ([]fsm.AuditRecord, error) {
	out := []fsm.AuditRecord{}
	for {
		if !all {
			q.Limit = min(limit-len(out), maxAuditPage)
		}
		page, err := c.Audit(ctx, q)
		if err != nil {
			return nil, err
		}
		out = append(out, page.Records...)
		if page.NextAfter == "" || len(page.Records) == 0 || !all && len(out) >= limit {
			return out, nil
		}
		if page.NextAfter == q.After {
			return nil, fmt.Errorf("read the audit log: the host repeated the page after %s", q.After)
		}
		q.After = page.NextAfter
	}
}

// printAudit writes audit records as a table.
func printAudit(w io.Writer, recs []fsm.AuditRecord) error {
	tw := newTable(w)
	row(tw, "SEQ", "TIME", "USER", "ROLE", "ACTION", "TARGET", "VIA", "REQUEST-ID")
	for _, r := range recs {
		row(tw, strconv.FormatUint(r.Seq, 10), formatTime(r.At), printable(r.User), orDash(printable(string(r.Role))), printable(r.Action),
			orDash(truncate(printable(r.Target), 60)), orDash(printable(r.Via)), orDash(truncate(printable(r.RequestID), 40)))
	}
	return flushTable(tw)
}

// printable replaces control characters (a request ID or a label is
// whatever a client sent) so that no record can drive the terminal.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, s)
}
