package fsm

import (
	"encoding/json"
	"fmt"
	"time"
)

// MaxPlacements bounds a task's placement history: older entries are
// dropped first.
const MaxPlacements = 16

// PlacementEvent is what happened to a task's placement.
type PlacementEvent uint8

// Placement events. Numbers are what a Placement holds in memory; JSON
// (API and snapshots) carries the names.
const (
	// PlacementPlaced: the leader assigned the task to the node.
	PlacementPlaced PlacementEvent = iota + 1
	// PlacementStarted: the task started running on the node.
	PlacementStarted
	// PlacementRequeued: the task went back to the queue from the node.
	PlacementRequeued
	// PlacementLost: the node stopped running the task (went offline or no
	// longer reported it).
	PlacementLost
)

var placementNames = [...]string{
	PlacementPlaced:   "placed",
	PlacementStarted:  "started",
	PlacementRequeued: "requeued",
	PlacementLost:     "lost",
}

// String names the event as JSON does.
func (e PlacementEvent) String() string {
	if int(e) < len(placementNames) && placementNames[e] != "" {
		return placementNames[e]
	}
	return fmt.Sprintf("event(%d)", uint8(e))
}

// MarshalJSON renders the event's name.
func (e PlacementEvent) MarshalJSON() ([]byte, error) {
	if int(e) >= len(placementNames) || placementNames[e] == "" {
		return nil, fmt.Errorf("placement event %d: unknown", uint8(e))
	}
	return json.Marshal(placementNames[e])
}

// UnmarshalJSON reads an event's name.
func (e *PlacementEvent) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("placement event: %w", err)
	}
	for i, n := range placementNames {
		if n != "" && n == s {
			*e = PlacementEvent(i)
			return nil
		}
	}
	return fmt.Errorf("placement event %q: unknown", s)
}

// Placement is one entry of a task's placement history: 32 bytes, the
// node name shared with the node's record. The time comes from the command
// that caused it (the leader's clock), never from Apply.
type Placement struct {
	// Node is where the event happened.
	Node string
	// at is the event's time in Unix nanoseconds (0: unknown).
	at    int64
	Event PlacementEvent
}

// NewPlacement returns a history entry for event on node at the given time.
func NewPlacement(node string, at time.Time, event PlacementEvent) Placement {
	p := Placement{Node: node, Event: event}
	if !at.IsZero() {
		p.at = at.UnixNano()
	}
	return p
}

// At returns the event's time (UTC; the zero time when unknown).
func (p Placement) At() time.Time {
	if p.at == 0 {
		return time.Time{}
	}
	return time.Unix(0, p.at).UTC()
}

// placementJSON is a Placement as the API and snapshots carry it.
type placementJSON struct {
	Node  string         `json:"node"`
	At    time.Time      `json:"at"`
	Event PlacementEvent `json:"event"`
}

// MarshalJSON renders {"node", "at" (RFC 3339), "event" (its name)}.
func (p Placement) MarshalJSON() ([]byte, error) {
	return json.Marshal(placementJSON{Node: p.Node, At: p.At(), Event: p.Event})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (p *Placement) UnmarshalJSON(b []byte) error {
	var v placementJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("placement: %w", err)
	}
	if v.Event == 0 {
		// Every placement has an event; one without could never be
		// written again (a snapshot taken after a restore would fail).
		return fmt.Errorf("placement on %q: event: missing", v.Node)
	}
	*p = NewPlacement(v.Node, v.At, v.Event)
	return nil
}

// addPlacement returns hist with p appended, keeping the newest
// MaxPlacements entries. It never writes into hist's array (stored tasks
// are immutable), and the result has no spare capacity.
func addPlacement(hist []Placement, p Placement) []Placement {
	if len(hist) >= MaxPlacements {
		hist = hist[len(hist)-MaxPlacements+1:]
	}
	out := make([]Placement, len(hist)+1)
	copy(out, hist)
	out[len(hist)] = p
	return out
}

// placementFor says which placement event, if any, a task's move from
// status from to status to is.
func placementFor(from, to Status) (PlacementEvent, bool) {
	switch {
	case to == StatusRunning && (from == StatusAssigning || from == StatusPending):
		return PlacementStarted, true
	case to == StatusPending && from == StatusAssigning:
		return PlacementRequeued, true
	case to == StatusLost:
		return PlacementLost, true
	}
	return 0, false
}
