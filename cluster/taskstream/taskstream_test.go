package taskstream

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

type fakeState struct {
	tasks map[int64]*fsm.Task
	nodes map[string]*fsm.Node
}

func (f fakeState) Task(id int64) (*fsm.Task, bool)    { t, ok := f.tasks[id]; return t, ok }
func (f fakeState) Node(name string) (*fsm.Node, bool) { n, ok := f.nodes[name]; return n, ok }

func TestLocate(t *testing.T) {
	st := fakeState{
		tasks: map[int64]*fsm.Task{
			1: {TaskID: 1, Status: fsm.StatusRunning, AssignedNode: "n1"},
			2: {TaskID: 2, Status: fsm.StatusCompleted, AssignedNode: "n1"},
			3: {TaskID: 3, Status: fsm.StatusRunning, AssignedNode: "gone"},
			4: {TaskID: 4, Status: fsm.StatusRunning, AssignedNode: "n2"},
		},
		nodes: map[string]*fsm.Node{
			"n1": {Hostname: "n1", URL: "http://10.0.0.1:8001", Status: fsm.NodeOnline},
			"n2": {Hostname: "n2", URL: "http://10.0.0.2:8001", Status: fsm.NodeOffline},
		},
	}
	if tg, err := Locate(st, st, 1); err != nil || tg.RunnerURL != "http://10.0.0.1:8001" || tg.Task.TaskID != 1 {
		t.Fatalf("running task: %+v, %v", tg, err)
	}
	for id, want := range map[int64]error{9: ErrNotFound, 2: ErrNotRunning, 3: ErrNotRunning, 4: ErrNotRunning} {
		if _, err := Locate(st, st, id); !errors.Is(err, want) {
			t.Errorf("task %d: %v, want %v", id, err, want)
		}
	}
}

// TestDialAndRelay: Dial sends the cluster token and reports a refusal
// with the runner's status and message; Relay copies frames both ways and
// passes the runner's close on to the client.
func TestDialAndRelay(t *testing.T) {
	const token = "secret"
	runner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(api.TokenHeader) != token {
			api.WriteError(w, http.StatusUnauthorized, "missing or wrong cluster token")
			return
		}
		if r.URL.Query().Get("cmd") != "echo" {
			api.WriteError(w, http.StatusConflict, "task 1 is not running")
			return
		}
		up := websocket.Upgrader{}
		conn, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		_, data, err := conn.ReadMessage()
		if err != nil {
			return
		}
		conn.WriteMessage(websocket.BinaryMessage, append([]byte{api.ExecChanStdout}, data[1:]...))                                            //nolint:errcheck // the client checks
		conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second)) //nolint:errcheck // same
		conn.ReadMessage()                                                                                                                     //nolint:errcheck // waits for the close answer
	}))
	defer runner.Close()
	ctx := t.Context()
	if _, err := (Client{Token: "wrong"}).Dial(ctx, runner.URL, "/exec/1", url.Values{"cmd": {"echo"}}); !isRunnerError(err, http.StatusUnauthorized, "cluster token") {
		t.Fatalf("wrong token: %v", err)
	}
	if _, err := (Client{Token: token}).Dial(ctx, runner.URL, "/exec/1", url.Values{"cmd": {"sleep"}}); !isRunnerError(err, http.StatusConflict, "not running") {
		t.Fatalf("refusal: %v", err)
	}

	// The replica: relays its client to the runner.
	relayed := make(chan error, 1)
	replica := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := (Client{Token: token}).Dial(r.Context(), runner.URL, "/exec/1", url.Values{"cmd": {"echo"}})
		if err != nil {
			api.WriteError(w, http.StatusBadGateway, err.Error())
			return
		}
		up := websocket.Upgrader{}
		a, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		relayed <- Relay(a, b)
	}))
	defer replica.Close()
	client, _, err := websocket.DefaultDialer.DialContext(ctx, "ws"+strings.TrimPrefix(replica.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if err := client.WriteMessage(websocket.BinaryMessage, []byte{api.ExecChanStdin, 'h', 'i'}); err != nil {
		t.Fatal(err)
	}
	client.SetReadDeadline(time.Now().Add(10 * time.Second)) //nolint:errcheck // the read reports it
	_, data, err := client.ReadMessage()
	if err != nil || string(data) != "\x01hi" {
		t.Fatalf("relayed frame %q, %v; want stdout hi", data, err)
	}
	_, _, err = client.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		t.Fatalf("after the runner closed: %v, want a normal close", err)
	}
	select {
	case <-relayed:
	case <-time.After(10 * time.Second):
		t.Fatal("Relay did not return after both sides closed")
	}
}

func isRunnerError(err error, status int, text string) bool {
	var re *api.APIError
	return errors.As(err, &re) && re.StatusCode == status && strings.Contains(re.Message, text)
}

// TestRelayEndsWhenASideGoesSilent: a client that never reads (so never
// answers a ping) ends the relay, and the runner side is closed.
func TestRelayEndsWhenASideGoesSilent(t *testing.T) {
	runnerClosed := make(chan struct{})
	runner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer close(runnerClosed)
		defer conn.Close()
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				return
			}
		}
	}))
	defer runner.Close()
	relayed := make(chan error, 1)
	replica := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := (Client{}).Dial(r.Context(), runner.URL, "/exec/1", nil)
		if err != nil {
			api.WriteError(w, http.StatusBadGateway, err.Error())
			return
		}
		a, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		relayed <- RelayPinging(a, b, 50*time.Millisecond)
	}))
	defer replica.Close()
	client, _, err := websocket.DefaultDialer.DialContext(t.Context(), "ws"+strings.TrimPrefix(replica.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close() // never read: its pings go unanswered
	select {
	case err := <-relayed:
		if err == nil {
			t.Fatal("Relay ended without an error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Relay went on with a silent client")
	}
	select {
	case <-runnerClosed:
	case <-time.After(10 * time.Second):
		t.Fatal("the runner side stayed open")
	}
}
