package cluster

import (
	"context"
	"net/http"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/httpapi"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// targetRE checks a runner's hostname (httpapi's submit-target pattern).
var targetRE = httpapi.TargetRE

func allStatusNames() []fsm.Status { return fsm.AllStatuses() }

// applyCtx bounds one proposal.
func (h *Host) applyCtx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), 10*time.Second)
}
