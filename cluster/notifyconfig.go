package cluster

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/httpapi"
	"github.com/hakuriver/hakuriver-ha/fsm"

	"github.com/hakuriver/hakuriver-ha/cluster/notify"
)

// NotifyConfig configures webhook notifications: what the leader POSTs,
// where, signed with which secret, and how hard it retries.
type NotifyConfig struct {
	// Webhooks are cluster-wide receivers of every task's events.
	Webhooks []string
	// AllEvents sends every status change, not only final states.
	AllEvents bool
	// Secret signs every delivery (HMAC-SHA256); required when Webhooks
	// or Allow is set. Without it nothing is delivered.
	Secret []byte
	// Allow lists the URL prefixes a task's own notify URL may start
	// with. Empty (the default) refuses per-task URLs: the leader would
	// POST wherever a user says, from inside the cluster's network.
	Allow []string
	// MaxAttempts bounds the attempts of one delivery (0: 8).
	MaxAttempts int
	// Timeout bounds one attempt (0: 10 s).
	Timeout time.Duration
	// BackoffBase and BackoffMax shape the wait between attempts
	// (0: 1 s and 5 min).
	BackoffBase, BackoffMax time.Duration
	// MaxAge: a new leader does not deliver events of tasks that ended
	// longer ago than this (0: 24 h).
	MaxAge time.Duration
	// Workers is how many POSTs are in flight at once (0: 8).
	Workers int
	// QueueSize bounds the deliveries the leader holds in memory (0:
	// 10000); beyond it, events wait for the next full scan.
	QueueSize int
}

// maxWebhooks bounds the cluster-wide webhooks, so that a task's delivery
// records (one per event and target) stay within fsm.MaxNotifications.
const maxWebhooks = 8

// withDefaults fills the zero fields.
func (c NotifyConfig) withDefaults() NotifyConfig {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.Timeout, 10*time.Second)
	def(&c.BackoffBase, time.Second)
	def(&c.BackoffMax, 5*time.Minute)
	def(&c.MaxAge, 24*time.Hour)
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 8
	}
	if c.Workers <= 0 {
		c.Workers = 8
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 10000
	}
	return c
}

// enabled reports whether this replica delivers anything when it leads.
func (c NotifyConfig) enabled() bool { return len(c.Secret) > 0 }

func (c NotifyConfig) validate() []error {
	var errs []error
	for i, u := range c.Webhooks {
		if err := notify.CheckURL(u); err != nil {
			errs = append(errs, fmt.Errorf("notify.webhook_urls[%d]: %w", i, err))
		}
	}
	if len(c.Webhooks) > maxWebhooks {
		errs = append(errs, fmt.Errorf("notify.webhook_urls: %d URLs, at most %d", len(c.Webhooks), maxWebhooks))
	}
	for i, p := range c.Allow {
		if err := notify.CheckURL(p); err != nil {
			errs = append(errs, fmt.Errorf("notify.webhook_allow[%d] %q: %w (a prefix is an absolute http(s) URL, e.g. https://hooks.lab.example/)", i, p, err))
		}
	}
	if len(c.Secret) == 0 && (len(c.Webhooks) > 0 || len(c.Allow) > 0) {
		errs = append(errs, errors.New("notify.webhook_secret or notify.webhook_secret_file: required with notify.webhook_urls or notify.webhook_allow (every delivery is signed)"))
	}
	if c.MaxAttempts < 0 || c.Workers < 0 || c.QueueSize < 0 || c.Timeout < 0 || c.MaxAge < 0 {
		errs = append(errs, errors.New("notify: max_attempts, workers, queue size, timeout and max age must not be negative"))
	}
	return errs
}

// newNotifyClient returns the client of webhook deliveries: it follows no
// redirect (a receiver must not send the leader on to an address the
// allow-list never approved) and honours the HTTP(S)_PROXY environment.
func newNotifyClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: 16,
			IdleConnTimeout: 30 * time.Second, TLSHandshakeTimeout: 10 * time.Second},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// webhookTarget is a cluster-wide webhook and its ID in the replicated
// state: a hash of its URL, so the URL (which may hold a token) is never
// written to the log or to snapshots.
type webhookTarget struct {
	id, url string
}

func webhookTargets(urls []string) []webhookTarget {
	out := make([]webhookTarget, 0, len(urls))
	seen := map[string]bool{}
	for _, u := range urls {
		sum := sha256.Sum256([]byte(u))
		id := "webhook:" + hex.EncodeToString(sum[:8])
		if !seen[id] {
			seen[id] = true
			out = append(out, webhookTarget{id: id, url: u})
		}
	}
	return out
}

// checkNotifyURL is nil when a task may have url as its notify URL: the
// URL starts with a prefix of notify.webhook_allow (and a secret signs the
// deliveries), and every replica can record delivery outcomes.
func (h *Host) checkNotifyURL(url string) error {
	if !h.cfg.Notify.enabled() || len(h.cfg.Notify.Allow) == 0 {
		return httpapi.BadRequest("notify: per-task webhook URLs are refused on this cluster: an admin must list allowed URL prefixes " +
			"in the hosts' config ([notify] webhook_allow = [\"https://hooks.example.org/\"], with webhook_secret): the leader POSTs from inside the cluster's network")
	}
	if !notify.Allowed(url, h.cfg.Notify.Allow) {
		return httpapi.BadRequest("notify: %q does not start with an allowed prefix (notify.webhook_allow in the hosts' config: %s)",
			url, strings.Join(h.cfg.Notify.Allow, ", "))
	}
	return h.commandKnown(fsm.CmdNotifyDelivered)
}
