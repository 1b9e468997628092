package doctor

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCheckTLS(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	l := Local{AdvertiseAddr: "10.0.0.1", Now: func() time.Time { return now }}
	for _, tc := range []struct {
		name     string
		notAfter time.Time
		err      error
		want     Status
		text     string
	}{
		{"valid", now.Add(365 * 24 * time.Hour), nil, StatusOK, "names 10.0.0.1"},
		{"expires soon", now.Add(5 * 24 * time.Hour), nil, StatusWarn, "expires"},
		{"wrong name", now.Add(365 * 24 * time.Hour), errors.New("x509: certificate is valid for 127.0.0.1, not 10.0.0.1"), StatusFail, "not valid for 10.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var asked string
			l.TLSVerify = func(name string, at time.Time) (time.Time, error) {
				asked = name
				if !at.Equal(now) {
					t.Errorf("verified at %s, want %s", at, now)
				}
				return tc.notAfter, tc.err
			}
			c := l.checkTLS()
			if c.Status != tc.want || !strings.Contains(c.Measured, tc.text) || asked != "10.0.0.1" {
				t.Fatalf("check %+v (asked for %q)", c, asked)
			}
			if tc.want != StatusOK && !strings.Contains(c.Cause, "hakuriver tls init") {
				t.Errorf("cause %q does not say how to reissue", c.Cause)
			}
		})
	}
}
