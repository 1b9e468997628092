package native

// Log attribute keys.
const (
	keyTaskID = "task_id"
	keyErr    = "err"
	keyPID    = "pid"
	keyDir    = "dir"
	keyCode   = "exit_code"
)
