package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/hakuriver/hakuriver-ha/ops/config"
	"github.com/hakuriver/hakuriver-ha/ops/systemd"
)

// newInitCmd returns "hakuriver init": files a node needs to run as a
// service.
func newInitCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Write the files that install a node (systemd service units)",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newInitServiceCmd())
	return cmd
}

// initServiceFlags are the flags of "hakuriver init service".
type initServiceFlags struct {
	configPath  string
	user, group string
	outputDir   string
	binary      string
	dockerGroup string
	writePaths  []string
	force       bool
}

// defaultUnitDir is where units made by the administrator go.
const defaultUnitDir = "/etc/systemd/system"

func newInitServiceCmd() *cobra.Command {
	var f initServiceFlags
	cmd := &cobra.Command{
		Use:   "service host|runner --config FILE [--user U --group G] [--output-dir DIR|-]",
		Short: "Write hakuriver-host.service or hakuriver-runner.service",
		Long: `Write a systemd unit that runs this node from its config file: the process's
user and group (a host: the system user hakuriver; a runner: root, since it
creates cgroups, starts native tasks as their owners and drives Docker), a
sandbox (NoNewPrivileges, ProtectSystem=strict with ReadWritePaths= exactly the
directories of the config that the process writes, ProtectHome, PrivateTmp
unless a configured path is under /tmp), LimitNOFILE, Restart=on-failure, and
ExecStart with the config's absolute path.

The unit reads every directory from the config, so the config must hold them
all (flags given to a hand-started process do not reach the service), as
absolute paths without spaces or unit-file special characters: a path that
cannot be written into a unit is refused, naming its key. Regenerate the unit
after changing directories in the config.

A runner's native tasks share its sandbox, which stays light: /usr, /boot and
/etc are read-only, homes and /tmp are as on the machine, and setuid programs
(sudo) do not raise a task. A host may write only its directories from the
config; --write-path DIR adds one (e.g. a directory of /etc for a runner).`,
		Example: `  hakuriver init service host --config /etc/hakuriver.toml
  hakuriver init service runner --config /etc/hakuriver.toml --output-dir -
  systemctl daemon-reload && systemctl enable --now hakuriver-runner.service`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"host", "runner"},
		RunE: func(cmd *cobra.Command, args []string) error {
			role := systemd.Role(args[0])
			if role != systemd.RoleHost && role != systemd.RoleRunner {
				return fmt.Errorf("service %q: want host or runner", args[0])
			}
			u, notes, err := f.unit(role)
			if err != nil {
				return err
			}
			for _, n := range notes {
				fmt.Fprintln(cmd.ErrOrStderr(), "note: "+n)
			}
			b, err := systemd.Render(u)
			if err != nil {
				return err
			}
			if role == systemd.RoleRunner && u.User != "root" {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: runner as %s: without root it cannot create cgroups or run tasks as their owners (use --no-cgroups and runner_user)\n", u.User)
			}
			for _, p := range u.Write {
				if _, err := os.Stat(p.Path); errors.Is(err, fs.ErrNotExist) {
					fmt.Fprintf(cmd.ErrOrStderr(), "note: %s %s does not exist yet; create it (owned by %s:%s) before starting the service: ReadWritePaths= needs it\n", p.Field, p.Path, u.User, u.Group)
				}
			}
			if f.outputDir == "-" {
				_, err := cmd.OutOrStdout().Write(b)
				return err
			}
			path, err := writeUnit(f.outputDir, systemd.UnitName(role), b, f.force)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s\nthen: systemctl daemon-reload && systemctl enable --now %s\n", path, systemd.UnitName(role))
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.configPath, "config", "c", "", "config file the service runs with (default $"+configEnv+"); its directories go into ReadWritePaths=")
	fl.StringVar(&f.user, "user", "", "User= (default: hakuriver for a host, root for a runner)")
	fl.StringVar(&f.group, "group", "", "Group= (default: the user's name)")
	fl.StringVar(&f.outputDir, "output-dir", defaultUnitDir, `directory to write the unit into ("-" for standard output)`)
	fl.StringVar(&f.binary, "binary", "", "absolute path of the hakuriver binary in ExecStart= (default: this binary)")
	fl.StringVar(&f.dockerGroup, "docker-group", "docker", `SupplementaryGroups= for the Docker socket of a non-root process ("" for none)`)
	fl.StringSliceVar(&f.writePaths, "write-path", nil, "another directory the service may write (repeatable): e.g. /home or a scratch disk for a runner's native tasks")
	fl.BoolVar(&f.force, "force", false, "overwrite an existing unit file")
	return cmd
}

// unit builds the unit of role from the flags and the config file.
func (f initServiceFlags) unit(role systemd.Role) (u systemd.Unit, notes []string, err error) {
	path := f.configPath
	if path == "" {
		path = os.Getenv(configEnv)
	}
	if path == "" {
		return u, nil, errors.New("--config: name the config file the service runs with (hakuriver config init writes one)")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return u, nil, fmt.Errorf("--config: %w", err)
	}
	c, err := config.Load(abs)
	if err != nil {
		return u, nil, err
	}
	bin := f.binary
	if bin == "" {
		if bin, err = os.Executable(); err != nil {
			return u, nil, fmt.Errorf("find this binary (give --binary): %w", err)
		}
		if bin, err = filepath.EvalSymlinks(bin); err != nil {
			return u, nil, fmt.Errorf("find this binary (give --binary): %w", err)
		}
	}
	u = systemd.Unit{Role: role, Binary: bin, Config: abs, User: f.user, Group: f.group}
	if u.User == "" {
		u.User = "hakuriver"
		if role == systemd.RoleRunner {
			u.User = "root"
		}
	}
	if u.Group == "" {
		u.Group = u.User
	}
	if f.dockerGroup != "" && u.User != "root" && u.User != "0" {
		// systemd refuses to start a unit naming a group that does not
		// exist (no Docker on this machine).
		if _, err := user.LookupGroup(f.dockerGroup); err == nil {
			u.SupplementaryGroups = []string{f.dockerGroup}
		} else {
			notes = append(notes, fmt.Sprintf("no group %s on this machine: the unit has no SupplementaryGroups= (Docker environments need the Docker socket)", f.dockerGroup))
		}
	}
	p := func(field, path string) systemd.Path { return systemd.Path{Field: field, Path: path} }
	u.Read = []systemd.Path{p("--binary", u.Binary), p("--config", u.Config)}
	for _, r := range []systemd.Path{p("cluster.cluster_token_file", c.Cluster.TokenFile),
		p("tls.cert_file", c.TLS.CertFile), p("tls.key_file", c.TLS.KeyFile), p("tls.ca_file", c.TLS.CAFile)} {
		if r.Path != "" {
			u.Read = append(u.Read, r)
		}
	}
	u.Mounts = []systemd.Path{p("paths.shared_dir", c.Paths.SharedDir)}
	if role == systemd.RoleHost {
		u.Write = []systemd.Path{p("cluster.data_dir", c.Cluster.DataDir), p("paths.shared_dir", c.Paths.SharedDir)}
		for _, port := range []int{c.Network.HostPort, c.Network.HostSSHProxyPort, c.Cluster.RaftPort, c.Cluster.GossipPort} {
			u.LowPorts = u.LowPorts || port > 0 && port < 1024
		}
		u.Write = append(u.Write, f.extraWrites()...)
		return u, notes, nil
	}
	u.Write = []systemd.Path{p("paths.shared_dir", c.Paths.SharedDir), p("paths.local_temp_dir", c.Paths.LocalTempDir),
		p("paths.runner_state_dir", c.Paths.RunnerStateDir)}
	if c.Paths.NumactlPath != "" {
		u.Read = append(u.Read, p("paths.numactl_path", c.Paths.NumactlPath))
	}
	u.Write = append(u.Write, f.extraWrites()...)
	return u, notes, nil
}

// extraWrites are the --write-path directories.
func (f initServiceFlags) extraWrites() []systemd.Path {
	var out []systemd.Path
	for _, w := range f.writePaths {
		out = append(out, systemd.Path{Field: "--write-path", Path: w})
	}
	return out
}

// writeUnit writes b as dir/name (mode 0644) through a temporary file and a
// rename; without force an existing file is an error and stays untouched.
func writeUnit(dir, name string, b []byte, force bool) (string, error) {
	path := filepath.Join(dir, name)
	if _, err := os.Stat(path); err == nil && !force {
		return "", fmt.Errorf("%s already exists (use --force to overwrite it)", path)
	}
	tmp, err := os.CreateTemp(dir, "."+name+".*")
	if err != nil {
		return "", fmt.Errorf("write unit: %w", err)
	}
	defer os.Remove(tmp.Name()) //nolint:errcheck // gone after the rename
	_, err = tmp.Write(b)
	if err = errors.Join(err, tmp.Chmod(0o644), tmp.Sync(), tmp.Close()); err != nil {
		return "", fmt.Errorf("write unit: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("write unit: %w", err)
	}
	return path, nil
}
