package scheduler

// PlanTryingEveryNode is Plan trying every pending task on every node,
// without skipping the shapes that fit no node earlier in the pass: the
// reference Plan must agree with.
func PlanTryingEveryNode(v View) Result { return plan(v, false) }
