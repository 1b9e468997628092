package main

import (
	"fmt"
	"net"

	"github.com/spf13/cobra"

	"github.com/hakuriver/hakuriver-ha/ops/certs"
)

// newTLSCmd is `hakuriver tls`: the cluster's certificates.
func newTLSCmd(g *clientFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tls",
		Short: "Certificates of the cluster's TLS (API, runners, Raft)",
	}
	cmd.AddCommand(newTLSInitCmd(g))
	return cmd
}

func newTLSInitCmd(g *clientFlags) *cobra.Command {
	var dir string
	var nodes, ips, dns []string
	cmd := &cobra.Command{
		Use:   "init --dir DIR --node NAME[,NAME...] [--ip IP...] [--dns NAME...]",
		Short: "Make the cluster CA (once) and a certificate per node signed by it",
		Long: `Make a small certificate authority in --dir (ca.pem, ca-key.pem; ECDSA
P-256) unless it already holds one, and a certificate and key per --node
(NAME.pem, NAME-key.pem) signed by it, good for both server and client
authentication. Running it again with the same --dir adds or renews node
certificates and never replaces the CA. Keys are written with mode 0600.

Every certificate names the node itself, localhost, 127.0.0.1 and ::1; add
the addresses others reach the node by with --ip and --dns (they go into
every certificate of this call, so issue one node per call when addresses
differ). Keep ca-key.pem off the nodes: each node needs ca.pem, its own
NAME.pem and NAME-key.pem ([tls] ca_file, cert_file, key_file).`,
		Example: `  hakuriver tls init --dir /etc/hakuriver/tls --node h1 --ip 10.0.0.1
  hakuriver tls init --dir /etc/hakuriver/tls --node h2 --ip 10.0.0.2
  hakuriver tls init --dir /etc/hakuriver/tls --node gpu1 --ip 10.0.0.11 --dns gpu1.lab`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := g.format()
			if err != nil {
				return err
			}
			if dir == "" {
				return fmt.Errorf("--dir: required")
			}
			o := certs.InitOptions{Nodes: nodes, DNS: dns}
			for _, s := range ips {
				ip := net.ParseIP(s)
				if ip == nil {
					return fmt.Errorf("--ip %q: not an IP address", s)
				}
				o.IPs = append(o.IPs, ip)
			}
			res, err := certs.Init(dir, o)
			if err != nil {
				return err
			}
			if format == outputJSON {
				return printJSON(cmd.OutOrStdout(), res)
			}
			w := cmd.OutOrStdout()
			if res.CACreated {
				fmt.Fprintf(w, "created CA %s (keep %s secret, off the nodes)\n", res.CA, certs.CAKeyFile)
			} else {
				fmt.Fprintf(w, "using existing CA %s\n", res.CA)
			}
			for _, n := range res.Nodes {
				fmt.Fprintf(w, "node %s: cert_file = %q, key_file = %q, ca_file = %q\n", n.Name, n.Cert, n.Key, res.CA)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "directory of the CA and the certificates (created 0700)")
	cmd.Flags().StringSliceVar(&nodes, "node", nil, "node name(s) to issue a certificate for, comma-separated or repeated")
	cmd.Flags().StringSliceVar(&ips, "ip", nil, "extra IP address(es) in the certificates")
	cmd.Flags().StringSliceVar(&dns, "dns", nil, "extra DNS name(s) in the certificates")
	return cmd
}
