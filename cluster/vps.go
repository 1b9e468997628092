package cluster

import (
	"net/http"
	"sort"
	"strings"

	"github.com/go-chi/chi/v5"
	"golang.org/x/crypto/ssh"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// vpsRoutes serves the original's VPS listings, from the local FSM
// (?consistent=1 asks the leader):
//
//   - GET /vps: every VPS task, any status, newest first (original §3.7);
//   - GET /vps/status: the active ones (pending, assigning, running,
//     paused), newest first, with ssh_port once the runner published it
//     (original §3.8; the dashboard and `vps list` read it).
//
// Items are whole tasks as /status/{id} serves them, a superset of the
// original's fields.
func (h *Host) vpsRoutes(r chi.Router) {
	r.Get("/vps", h.consistentRead(h.handleVPSList))
	r.Get("/vps/status", h.consistentRead(h.handleVPSStatus))
}

func (h *Host) handleVPSList(w http.ResponseWriter, _ *http.Request) {
	tasks, _ := h.machine.Tasks(fsm.Filter{Type: fsm.TaskVPS}, 0, 0)
	if tasks == nil {
		tasks = []*fsm.Task{}
	}
	writeJSON(w, http.StatusOK, tasks)
}

func (h *Host) handleVPSStatus(w http.ResponseWriter, _ *http.Request) {
	out := []*fsm.Task{}
	for _, t := range h.machine.Active() {
		if t.TaskType == fsm.TaskVPS {
			out = append(out, t)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].TaskID > out[j].TaskID })
	writeJSON(w, http.StatusOK, out)
}

// checkVPSKey validates a VPS submit's command: its owner's public keys in
// authorized_keys format (blank and # lines ignored), which the runner
// installs for root and the SSH jump host checks. At least one is needed,
// and every other line must be one too.
func checkVPSKey(command string) error {
	n := 0
	for _, line := range strings.Split(command, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line)); err != nil {
			if len(line) > 40 {
				line = line[:37] + "..."
			}
			return badRequest("command: a VPS's command is its SSH public key; %q is not an OpenSSH public key", line)
		}
		n++
	}
	if n == 0 {
		return badRequest("command: a VPS needs an SSH public key (e.g. the contents of ~/.ssh/id_ed25519.pub)")
	}
	return nil
}
