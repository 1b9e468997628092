//go:build integration

package integration

import (
	"testing"

	"github.com/chromedp/chromedp"
)

// TestDashboardLoginRequired opens the dashboard of a follower without a
// session: it shows the login page (the API answers 401); signing in with
// the admin token from the dev export line shows the overview and the
// who-am-I badge; signing out shows the login page again.
func TestDashboardLoginRequired(t *testing.T) {
	d := startDevUI(t)
	ctx := newBrowser(t)
	f := d.follower(t)
	if err := open(ctx, d.URLs[f], "/ui/nodes", "#login-token"); err != nil {
		t.Fatalf("anonymous: no login page: %v", err)
	}
	shot(t, ctx, "login")
	if err := login(ctx, d.URLs[f], d.Token); err != nil {
		t.Fatalf("login: %v", err)
	}
	if _, err := waitText(ctx, "#whoami", "admin"); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS("#overview-replicas tbody tr"))); err != nil {
		t.Fatalf("overview after login: %v", err)
	}
	noConsoleErrors(t, ctx)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("logout")), chromedp.WaitVisible(chromedp.ID("login-token"))); err != nil {
		t.Fatalf("logout: %v", err)
	}
	// The session is gone on the server too: a reload stays on the login page.
	if err := chromedp.Do(ctx, chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("login-token"))); err != nil {
		t.Fatalf("reload after logout: %v", err)
	}
	noConsoleErrors(t, ctx)
}
