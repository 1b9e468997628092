#!/usr/bin/env bash
# Installs what the test suite needs when it is missing. Idempotent.
set -euo pipefail
need=()
command -v ssh >/dev/null 2>&1 || need+=(openssh-client)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v iptables >/dev/null 2>&1 || need+=(iptables)
# ops/systemd and `hakuriver init service` check the generated units with
# `systemd-analyze verify` (installing the package does not start systemd).
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
if [ ${#need[@]} -gt 0 ]; then
  echo "test-deps: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi
# The dashboard's browser tests (integration/dashboard_*_test.go) drive
# Debian's chromium with chromedp. The dashboard's libraries are vendored
# (ops/dashboard/static/vendor): the libjs packages are not needed to test.
if ! command -v chromium >/dev/null 2>&1; then
  echo "test-deps: installing chromium"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
# The monitoring test (integration/monitoring_test.go) runs Debian's
# Prometheus against a replica. Only its binaries are extracted, into
# bin/prometheus: no service is installed or started.
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ ! -x "$root/bin/prometheus/usr/bin/prometheus" ] && ! command -v prometheus >/dev/null 2>&1; then
  echo "test-deps: fetching prometheus (binaries into bin/prometheus)"
  tmp="$(mktemp -d)"
  if ! (cd "$tmp" && apt-get download -qq -o APT::Sandbox::User=root prometheus >/dev/null 2>&1); then
    apt-get update -qq && (cd "$tmp" && apt-get download -qq -o APT::Sandbox::User=root prometheus >/dev/null)
  fi
  mkdir -p "$root/bin/prometheus"
  dpkg-deb -x "$tmp"/prometheus_*.deb "$root/bin/prometheus"
  rm -rf "$tmp"
fi
