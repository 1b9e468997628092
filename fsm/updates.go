package fsm

// UpdateTasks carries several task status reports in one entry: the reports
// a runner batched (many tasks' ends in one request). Each is applied as an
// UpdateTask of its own would be, independently and in order, with the same
// validation and the same result: one that is rejected (an unknown task, a
// final task, a move the status rules forbid) leaves the others unchanged.
// Re-applying a batch changes nothing twice, as each UpdateTask is a no-op
// for a status the task already has.
type UpdateTasks struct {
	Updates []UpdateTask `json:"updates"`
}

// Type implements Command.
func (*UpdateTasks) Type() CommandType { return CmdUpdateTasks }

// UpdateResults is the Value of an UpdateTasks: the outcome of each
// update, in order (nil for one that was applied or changed nothing).
type UpdateResults []error

func (m *Machine) applyUpdateTasks(c *UpdateTasks) Result {
	out := make(UpdateResults, len(c.Updates))
	for i := range c.Updates {
		out[i] = m.applyUpdate(&c.Updates[i]).Err
	}
	return Result{Value: out}
}
