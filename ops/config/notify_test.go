package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNotifySection(t *testing.T) {
	c, err := Parse("n.toml", `
[notify]
webhook_urls = ["https://ci.lab/hook?a=1,2"]
webhook_events = "all"
webhook_secret = "s"
webhook_allow = ["https://hooks.lab/"]
webhook_max_attempts = 3
`)
	if err != nil {
		t.Fatal(err)
	}
	n := c.Notify
	if len(n.WebhookURLs) != 1 || n.WebhookURLs[0] != "https://ci.lab/hook?a=1,2" || n.WebhookEvents != "all" || n.WebhookMaxAttempts != 3 || n.WebhookTimeout != 10 {
		t.Fatalf("parsed %+v", n)
	}
	if s, err := n.Secret(); err != nil || s != "s" {
		t.Fatalf("Secret() = %q, %v", s, err)
	}
	f := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(f, []byte(" from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := (Notify{WebhookSecretFile: f}).Secret(); err != nil || s != "from-file" {
		t.Fatalf("Secret() from a file = %q, %v", s, err)
	}
	for text, want := range map[string]string{
		"[notify]\nwebhook_urls = [\"https://h/x\"]\n":                     "notify.webhook_secret: required",
		"[notify]\nwebhook_allow = [\"https://h/\"]\n":                     "notify.webhook_secret: required",
		"[notify]\nwebhook_events = \"some\"\n":                            "notify.webhook_events: must be one of final, all",
		"[notify]\nwebhook_secret = \"a\"\nwebhook_secret_file = \"/x\"\n": "set only one of notify.webhook_secret",
		"[notify]\nwebhook_secret = \"a\"\nwebhook_max_attempts = 0\n":     "notify.webhook_max_attempts: must be between 1 and 100",
		"[notify]\nwebhook_secret = \"a\"\nwebhook_timeout = 0\n":          "notify.webhook_timeout: must be between 1 and 300",
		"[notify]\nwebhook_url = [\"https://h/x\"]\n":                      "unknown key notify.webhook_url (did you mean notify.webhook_urls?)",
	} {
		_, err := Parse("n.toml", text)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", text, err, want)
		}
		if err != nil && !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrUnknownKey) {
			t.Errorf("%q: %v wraps neither ErrInvalid nor ErrUnknownKey", text, err)
		}
	}
}
