package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/ops/environment"
)

// newVPSCmd builds "hakuriver vps": create, list, status, stop, pause and
// resume VPS tasks.
func newVPSCmd(g *clientFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "vps",
		Short: "Create, list, stop, start and kill VPS tasks (long-lived containers reached by SSH)",
		Long: `A VPS is a long-lived container from a Docker environment with sshd, the
cores, memory and GPUs it was created with, and your public key installed
for root. Reach it with "hakuriver ssh TASK_ID" through any host replica.

Every vps command talks to the host replicas given by --host (or
$HAKURIVER_HOST) and tries the next replica when one is down.`,
		Example: `  hakuriver vps create --cores 4 --memory 8G --wait
  hakuriver vps create --target gpu1::0 --container pytorch --gen-ssh-key
  hakuriver vps list
  hakuriver vps create --name lab-box --wait
  hakuriver ssh 1790263384729600000
  hakuriver vps stop lab-box      # container and disk kept, resources freed
  hakuriver vps start lab-box --wait
  hakuriver vps kill lab-box      # ends it and removes the container`,
	}
	cmd.AddCommand(newVPSCreateCmd(g), newVPSListCmd(g), newVPSStatusCmd(g), newVPSStopCmd(g),
		newVPSStartCmd(g), newVPSKillCmd(g), newVPSSnapshotCmd(g), newVPSSnapshotsCmd(g),
		newVPSControlCmd(g, "pause"), newVPSControlCmd(g, "resume"))
	return cmd
}

// vpsCreateOptions holds the flags of "vps create".
type vpsCreateOptions struct {
	target        string
	cores         int
	memory        string
	gpus          string
	container     string
	privileged    bool
	mounts        []string
	publicKey     string
	publicKeyFile string
	genKey        bool
	keyOut        string
	requestID     string
	name          string
	fromSnapshot  string
	wait          bool
	pollInterval  time.Duration
}

func newVPSCreateCmd(g *clientFlags) *cobra.Command {
	o := &vpsCreateOptions{}
	cmd := &cobra.Command{
		Use:     "create",
		Aliases: []string{"submit"},
		Short:   "Create a VPS task",
		Long: `Create a VPS: a container from the environment --container (default: the
host's) that runs sshd with your public key installed for root, limited to
--cores CPUs (pinned, so nproc shows them), --memory and --gpus.

Without --target the scheduler places it on a node that fits. A target is
HOST[:NUMA][::GPU,GPU...], as for "task submit".

The public key is, in this order: --public-key, --public-key-file, or
~/.ssh/id_ed25519.pub, else ~/.ssh/id_rsa.pub. --gen-ssh-key instead makes
a new ed25519 key pair for this VPS, saves the private key (mode 0600) to
--key-out (default ~/.ssh/hakuriver-vps-TASK_ID) and the public key next to
it with ".pub", and prints the path.

The task ID is printed, then how to connect. With --wait the command also
waits until the VPS runs and its SSH port is known.`,
		Example: `  hakuriver vps create
  hakuriver vps create --cores 4 --memory 16G --container pytorch --wait
  hakuriver vps create --target gpu1::0,1 --gen-ssh-key
  hakuriver vps create --public-key-file ~/.ssh/lab.pub --target node2:1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runVPSCreate(cmd, g, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.target, "target", "", "node `HOST[:NUMA][::GPU,GPU...]` (default: the scheduler picks one)")
	f.IntVar(&o.cores, "cores", 1, "CPU cores (0: no limit)")
	f.StringVar(&o.memory, "memory", "", "memory limit, e.g. 512M, 4G, 2Gi (default: no limit)")
	f.StringVar(&o.gpus, "gpus", "", "`N` free GPUs on whichever node runs it (GPU IDs go in --target HOST::ID,ID)")
	f.StringVar(&o.container, "container", "", "container environment `NAME` (default: the host's default)")
	f.BoolVar(&o.privileged, "privileged", false, "run the container privileged (default: host default)")
	f.StringArrayVar(&o.mounts, "mount", nil, "extra bind mount HOST:CONTAINER[:OPTS]; repeatable")
	f.StringVar(&o.publicKey, "public-key", "", "the SSH public `KEY` itself (\"ssh-ed25519 AAAA... comment\")")
	f.StringVar(&o.publicKeyFile, "public-key-file", "", "read the SSH public key from `FILE`")
	f.BoolVar(&o.genKey, "gen-ssh-key", false, "generate a new ed25519 key pair for this VPS")
	f.StringVar(&o.keyOut, "key-out", "", "where --gen-ssh-key saves the private key (default ~/.ssh/hakuriver-vps-TASK_ID)")
	f.StringVar(&o.name, "name", "", "name the VPS `NAME` (1-64 of a-z A-Z 0-9 . _ -): vps stop/start/kill/status and ssh take it instead of the ID")
	f.StringVar(&o.fromSnapshot, "from-snapshot", "", "start from VPS snapshot `NAME[:VERSION]` (hakuriver vps snapshots) instead of --container")
	f.StringVar(&o.requestID, "request-id", "", "idempotency key: creating again with the same ID creates nothing new (default: random)")
	f.BoolVar(&o.wait, "wait", false, "wait until the VPS runs and its SSH port is known")
	f.DurationVar(&o.pollInterval, "poll-interval", time.Second, "time between status checks with --wait")
	cmd.MarkFlagsMutuallyExclusive("public-key", "public-key-file", "gen-ssh-key")
	cmd.MarkFlagsMutuallyExclusive("container", "from-snapshot")
	return cmd
}

// vpsCreateOutput is the JSON output of "vps create".
type vpsCreateOutput struct {
	api.SubmitResponse
	TaskID         string    `json:"task_id"`
	PrivateKeyFile string    `json:"private_key_file,omitempty"`
	Connect        string    `json:"connect"`
	Task           *fsm.Task `json:"task,omitempty"`
}

func runVPSCreate(cmd *cobra.Command, g *clientFlags, o *vpsCreateOptions) error {
	format, err := g.format()
	if err != nil {
		return err
	}
	req, err := o.request(cmd)
	if err != nil {
		return err
	}
	if o.wait && o.pollInterval <= 0 {
		return fmt.Errorf("invalid --poll-interval %s: must be positive", o.pollInterval)
	}
	var key *genKey
	if o.genKey {
		if key, err = newGenKey(o.keyOut); err != nil {
			return err
		}
		req.Command = key.public
	} else {
		if o.keyOut != "" {
			return errors.New("--key-out needs --gen-ssh-key")
		}
		if req.Command, err = o.resolvePublicKey(); err != nil {
			return err
		}
	}
	c, err := g.client()
	if err != nil {
		key.discard()
		return err
	}
	defer c.Close()
	ctx, cancel := g.call(cmd.Context())
	if o.fromSnapshot != "" {
		env, err := fromSnapshot(ctx, c, o.fromSnapshot)
		if err != nil {
			cancel()
			key.discard()
			return err
		}
		req.ContainerName = &env
	}
	resp, err := c.Submit(ctx, req)
	cancel()
	if err == nil && len(resp.TaskIDs) != 1 {
		err = fmt.Errorf("no VPS created: %s", resp.Message)
	}
	if err != nil {
		key.discard()
		return err
	}
	id := resp.TaskIDs[0]
	res := vpsCreateOutput{SubmitResponse: resp, TaskID: id, Connect: "hakuriver ssh " + id}
	if key != nil {
		res.PrivateKeyFile = key.keep(id, o.keyOut == "", cmd.ErrOrStderr())
		res.Connect = "hakuriver ssh --key " + res.PrivateKeyFile + " " + id
	}
	out := cmd.OutOrStdout()
	if format == outputTable {
		fmt.Fprintln(out, id)
		if key != nil {
			fmt.Fprintf(out, "Private key saved to %s (public key: %s.pub).\n", res.PrivateKeyFile, res.PrivateKeyFile)
		}
	}
	if o.wait {
		t, err := c.WaitVPS(cmd.Context(), id, api.PollOptions{Interval: o.pollInterval, CallTimeout: g.timeout})
		if err != nil {
			return err
		}
		res.Task = &t
		if format == outputTable {
			fmt.Fprintf(out, "VPS %s is running on %s, SSH port %d.\n", id, t.AssignedNode, t.SSHPort)
		}
	}
	if format == outputJSON {
		return printJSON(out, res)
	}
	_, err = fmt.Fprintf(out, "Connect with: %s\n", res.Connect)
	return err
}

// request builds the submit body from the flags (without the key).
func (o *vpsCreateOptions) request(cmd *cobra.Command) (api.SubmitRequest, error) {
	req := api.SubmitRequest{TaskType: string(fsm.TaskVPS), RequestID: strings.TrimSpace(o.requestID), Name: o.name}
	if o.name != "" && !fsm.ValidTaskName(o.name) {
		return req, fmt.Errorf("invalid --name %q: want 1-%d letters, digits, '.', '_' or '-', starting with a letter or digit and not all digits", o.name, fsm.MaxTaskNameLen)
	}
	if o.cores < 0 {
		return req, fmt.Errorf("invalid --cores value %d: must be 0 or more", o.cores)
	}
	cores := o.cores
	req.RequiredCores = &cores
	if o.memory != "" {
		n, err := parseMemory(o.memory)
		if err != nil {
			return req, fmt.Errorf("invalid --memory value %q: %w", o.memory, err)
		}
		req.RequiredMemoryBytes = &n
	}
	so := submitOptions{gpus: o.gpus}
	if o.target != "" {
		so.targets = []string{o.target}
	}
	if err := so.addTargets(&req); err != nil {
		return req, err
	}
	if cmd.Flags().Changed("container") {
		name := strings.TrimSpace(o.container)
		if name == "" || environment.IsNative(name) {
			return req, fmt.Errorf("invalid --container value %q: a VPS needs a Docker environment name", o.container)
		}
		req.ContainerName = &name
	}
	if cmd.Flags().Changed("privileged") {
		p := o.privileged
		req.Privileged = &p
	}
	if err := checkMountFlags(o.mounts); err != nil {
		return req, err
	}
	req.AdditionalMounts = o.mounts
	return req, nil
}

// resolvePublicKey returns the public key to install: --public-key,
// --public-key-file, else the first of ~/.ssh/id_ed25519.pub and
// ~/.ssh/id_rsa.pub that exists.
func (o *vpsCreateOptions) resolvePublicKey() (string, error) {
	if o.publicKey != "" {
		return checkPublicKey(o.publicKey, "--public-key")
	}
	if o.publicKeyFile != "" {
		b, err := os.ReadFile(expandHome(o.publicKeyFile))
		if err != nil {
			return "", fmt.Errorf("read --public-key-file: %w", err)
		}
		return checkPublicKey(string(b), o.publicKeyFile)
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no public key given and no home directory to look in: %w", err)
	}
	var tried []string
	for _, name := range []string{"id_ed25519.pub", "id_rsa.pub"} {
		p := filepath.Join(home, ".ssh", name)
		b, err := os.ReadFile(p)
		if err == nil {
			return checkPublicKey(string(b), p)
		}
		tried = append(tried, p)
	}
	return "", fmt.Errorf("no public key: none of %s exists; give --public-key-file FILE, --public-key KEY, or --gen-ssh-key",
		strings.Join(tried, ", "))
}

// checkPublicKey trims an authorized_keys text and checks that every line
// that is not blank or a comment is an OpenSSH public key (and at least one
// is). A private key is refused with a hint.
func checkPublicKey(text, from string) (string, error) {
	var keys []string
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.Contains(line, "PRIVATE KEY") {
			return "", fmt.Errorf("%s holds a private key; give the public key (the .pub file)", from)
		}
		if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line)); err != nil {
			return "", fmt.Errorf("%s: %q is not an OpenSSH public key", from, truncate(line, 40))
		}
		keys = append(keys, line)
	}
	if len(keys) == 0 {
		return "", fmt.Errorf("%s: no public key in it", from)
	}
	return strings.Join(keys, "\n"), nil
}

// expandHome replaces a leading "~/" with the home directory.
func expandHome(p string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, rest)
		}
	}
	return p
}

// genKey is a key pair generated by --gen-ssh-key, saved before the submit
// (so that a VPS is never created with a key that could not be saved) under
// a temporary name when no --key-out was given.
type genKey struct {
	path   string // the private key; path+".pub" the public one
	public string
}

// newGenKey generates an ed25519 key pair and saves it to keyOut, or to
// ~/.ssh/hakuriver-<timestamp> until the task ID is known.
func newGenKey(keyOut string) (*genKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate ssh key: %w", err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("generate ssh key: %w", err)
	}
	path := expandHome(keyOut)
	if path == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, fmt.Errorf("no home directory for the generated key; give --key-out: %w", err)
		}
		path = filepath.Join(home, ".ssh", "hakuriver-"+time.Now().UTC().Format("20060102T150405.000000000"))
	}
	comment := "hakuriver-vps@" + time.Now().UTC().Format("2006-01-02")
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, fmt.Errorf("encode ssh key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create the key directory: %w", err)
	}
	// O_EXCL: never overwrite an existing key.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("save the private key: %w", err)
	}
	if _, err := f.Write(pem.EncodeToMemory(block)); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("save the private key: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("save the private key: %w", err)
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))) + " " + comment
	if err := os.WriteFile(path+".pub", []byte(line+"\n"), 0o644); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("save the public key: %w", err)
	}
	return &genKey{path: path, public: line}, nil
}

// discard removes a generated key pair whose VPS was not created; a nil
// key is a no-op.
func (k *genKey) discard() {
	if k == nil {
		return
	}
	os.Remove(k.path)          //nolint:errcheck // best effort: the key is useless
	os.Remove(k.path + ".pub") //nolint:errcheck // best effort: the key is useless
}

// keep names the key pair after the VPS (hakuriver-vps-<id> in the same
// directory) when rename is set and that name is free, and returns the
// private key's final path. A failed rename keeps the first name.
func (k *genKey) keep(id string, rename bool, warn io.Writer) string {
	if !rename {
		return k.path
	}
	to := filepath.Join(filepath.Dir(k.path), "hakuriver-vps-"+id)
	if _, err := os.Lstat(to); err == nil {
		return k.path
	}
	if err := os.Rename(k.path, to); err != nil {
		fmt.Fprintf(warn, "warning: keeping the key as %s: %v\n", k.path, err)
		return k.path
	}
	if err := os.Rename(k.path+".pub", to+".pub"); err != nil {
		fmt.Fprintf(warn, "warning: public key left as %s.pub: %v\n", k.path, err)
	}
	return to
}

func newVPSListCmd(g *clientFlags) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List active and stopped VPS tasks, newest first",
		Long: `List the VPS tasks that are pending, assigning, running, paused or
stopped, newest first, with the SSH port of each running one. --all lists
every VPS task, ended ones included.`,
		Example: `  hakuriver vps list
  hakuriver vps list --all -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *api.Client, format string) error {
				path := "/api/vps/status"
				if all {
					path = "/api/vps"
				}
				var tasks []fsm.Task
				if _, err := c.Do(ctx, http.MethodGet, path, nil, &tasks); err != nil {
					return fmt.Errorf("list VPS tasks: %w", err)
				}
				if !all {
					// The original's active list leaves stopped VPS out.
					stopped, _, err := c.Tasks(ctx, api.TaskQuery{Type: string(fsm.TaskVPS), Status: string(fsm.StatusStopped), Limit: maxBatchList})
					if err != nil {
						return fmt.Errorf("list stopped VPS tasks: %w", err)
					}
					tasks = mergeNewestFirst(tasks, stopped)
				}
				if format == outputJSON {
					if tasks == nil {
						tasks = []fsm.Task{}
					}
					return printJSON(cmd.OutOrStdout(), tasks)
				}
				return printVPSTable(cmd.OutOrStdout(), tasks)
			})
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "list ended VPS tasks too")
	return cmd
}

// printVPSTable writes VPS tasks as a table.
func printVPSTable(w io.Writer, tasks []fsm.Task) error {
	if len(tasks) == 0 {
		_, err := fmt.Fprintln(w, "No VPS tasks.")
		return err
	}
	tw := newTable(w)
	row(tw, "TASK ID", "NAME", "STATUS", "NODE", "SSH PORT", "CORES", "MEMORY", "STARTED")
	for _, t := range tasks {
		port := "-"
		if t.SSHPort > 0 {
			port = strconv.Itoa(t.SSHPort)
		}
		node := t.AssignedNode
		if node == "" && t.TargetNode != "" {
			node = t.TargetNode + " (target)"
		}
		cores := strconv.Itoa(t.RequiredCores)
		if t.RequiredCores == 0 {
			cores = "-"
		}
		row(tw, strconv.FormatInt(t.TaskID, 10), orDash(t.Name), string(t.Status), orDash(node), port, cores,
			formatBytes(t.RequiredMemoryBytes), formatTimePtr(t.StartedAt))
	}
	return flushTable(tw)
}

// getVPS fetches a task and checks that it is a VPS.
func getVPS(ctx context.Context, c *api.Client, id string) (fsm.Task, error) {
	t, err := c.Status(ctx, id)
	if err != nil {
		return t, err
	}
	if t.TaskType != fsm.TaskVPS {
		return t, fmt.Errorf("task %s is not a VPS (it is a %s task; use hakuriver task)", id, t.TaskType)
	}
	return t, nil
}

func newVPSStatusCmd(g *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "status VPS",
		Short: "Show one VPS task (by task ID or name)",
		Long: `Show one VPS task: status, node, SSH port, resources and timestamps. With
--output json it prints the task as the API returns it.`,
		Example: `  hakuriver vps status 1790263384729600000`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *api.Client, format string) error {
				t, err := resolveVPS(ctx, c, args[0])
				if err != nil {
					return err
				}
				if format == outputJSON {
					return printJSON(cmd.OutOrStdout(), t)
				}
				if err := printTask(cmd.OutOrStdout(), t); err != nil {
					return err
				}
				if t.Status == fsm.StatusRunning && t.SSHPort > 0 {
					_, err = fmt.Fprintf(cmd.OutOrStdout(), "Connect with: hakuriver ssh %d\n", t.TaskID)
				}
				return err
			})
		},
	}
}

// newVPSControlCmd builds "vps pause" and "vps resume".
func newVPSControlCmd(g *clientFlags, action string) *cobra.Command {
	short := "Pause a running VPS (its processes are frozen; SSH sessions hang until resume)"
	if action == "resume" {
		short = "Resume a paused VPS"
	}
	return &cobra.Command{
		Use:     action + " TASK_ID",
		Short:   short,
		Example: "  hakuriver vps " + action + " 1790263384729600000",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *api.Client, format string) error {
				if _, err := getVPS(ctx, c, args[0]); err != nil {
					return err
				}
				op := c.Pause
				if action == "resume" {
					op = c.Resume
				}
				resp, err := op(ctx, args[0])
				if err != nil {
					return err
				}
				return printMessage(cmd.OutOrStdout(), format, resp)
			})
		},
	}
}
