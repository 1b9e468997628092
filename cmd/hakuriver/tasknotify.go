package main

import (
	"fmt"
	"io"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// notificationRows adds the webhook rows of "task status": the task's
// notify URL and every delivery's state, attempts and last error. A final
// task whose notify URL has no record yet is pending (not attempted).
func notificationRows(tw io.Writer, t *fsm.Task) {
	if t.Notify != "" {
		row(tw, "Notify", t.Notify)
	}
	rows := make([]string, 0, len(t.Notifications)+1)
	attempted := false
	for _, n := range t.Notifications {
		attempted = attempted || n.Target == fsm.NotifyTargetTask && n.Event == t.Status
		s := fmt.Sprintf("%s %s %s (%d attempt%s, %s)", n.Event, n.Target, n.State, n.Attempts, plural(n.Attempts), formatTime(n.At))
		if n.LastError != "" {
			s += ": " + n.LastError
		}
		rows = append(rows, s)
	}
	if t.Notify != "" && t.Status.Final() && !attempted {
		rows = append(rows, fmt.Sprintf("%s task pending (not attempted yet)", t.Status))
	}
	for i, r := range rows {
		k := ""
		if i == 0 {
			k = "Notifications:"
		}
		row(tw, k, r)
	}
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
