package doctor

// TokenCheck reports whether a member authenticates internal calls. The token
// itself is never reported. A member running without one (insecure set, as
// --insecure-no-token does) warns: anyone who reaches it can register
// runners, run commands through runners and change the Raft membership. No
// token without insecure fails: hakuriver host and runner refuse to start so
// (the --local checks of a node that is not running yet).
func TokenCheck(token string, insecure bool) Check {
	const name = "cluster token"
	switch {
	case token != "":
		return okCheck(name, "set")
	case insecure:
		return warnCheck(name, "insecure: no cluster token (--insecure-no-token)",
			"anyone who reaches this member can make internal calls and change membership: set cluster_token or cluster_token_file on every host and runner")
	}
	return failCheck(name, "no cluster token",
		"hakuriver host and runner refuse to start without one: set cluster_token or cluster_token_file (or pass --insecure-no-token)")
}
