#!/usr/bin/env bash
# Breaks the product on purpose, one named behaviour at a time, in a scratch
# copy of the tree, and runs the tests that claim to cover it: a mutation
# the tests do not catch ("SURVIVED") is a hole in the suite. The real tree
# is never touched. Re-run it after big changes: `make mutate`, or
#
#   .ci/mutate.sh [name...]        (default: every mutation below)
#
# Each mutation is: name | file | perl substitution (must match) | go test
# arguments. Docker-, cgroup- and SSH-dependent tests need what `make test`
# installs (run it once first). Exit status: the number of survivors.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
export PATH="$PATH:/usr/local/go/bin"
export HAKURIVER_REQUIRE_DOCKER=1 HAKURIVER_REQUIRE_CGROUPS=1 HAKURIVER_REQUIRE_SSH=1

mutations=(
  "fsm-dedupe-off|fsm/machine.go|s/if ids, ok := m\.requests\[c\.RequestID\]; ok \{/if ids, ok := m.requests[c.RequestID]; ok \&\& false {/|-count=1 ./fsm ./cluster -run TestReplayDeterminism|TestSameRequestIDAtEveryReplicaAtOnce"
  "forward-drops-request-id|cluster/forward.go|s/(\treq\.Header\.Set\(api\.ForwardedHeader, h\.cfg\.NodeID\)\n)/\$1\treq.Header.Del(requestIDHeader)\n/|-count=1 ./cluster -run TestServerAttachedRequestIDAcrossReplicasAndLeaders"
  "overcommit-one-core|scheduler/scheduler.go|s/if t\.RequiredCores > freeCores \{/if t.RequiredCores > freeCores+1 {/|-count=1 ./scheduler"
  "lost-on-first-miss|scheduler/reconcile.go|s/const MissingHeartbeats = 2/const MissingHeartbeats = 1/|-count=1 ./scheduler ./cluster -run TestReconcile|TestHeartbeatReconcileAndUsage"
  "partial-heartbeat-reconciles|scheduler/reconcile.go|s/if report\.Partial \{/if report.Partial \&\& false {/|-count=1 ./scheduler ./cluster -run TestReconcile|TestHeartbeatReconcileAndUsage"
  "offline-not-lost|fsm/machine.go|s/if c\.Status == NodeOffline \{/if c.Status == NodeOffline \&\& false {/|-count=1 ./fsm ./cluster"
  "memory-limit-dropped|runner/executor/native/cgroup.go|s/if lim\.MemoryBytes > 0 \{/if lim.MemoryBytes > 0 \&\& false {/g|-count=1 ./runner/executor/native -run TestMemoryLimitOOM|TestCgroupLimitsApplied"
  "cpu-quota-dropped|runner/executor/native/cgroup.go|s/if lim\.Cores > 0 \{/if lim.Cores > 0 \&\& false {/g|-count=1 ./runner/executor/native -run TestCgroupLimitsApplied"
  "jump-host-any-key|sshproxy/target.go|s/return containsKey\(t\.AuthorizedKeys\(\), key\)/return key != nil/|-count=1 ./sshproxy"
)

want=("$@")
scratch=$(mktemp -d /tmp/hakuriver-mutate.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
survivors=0
printf '%-26s %-9s %s\n' mutation verdict "tests run"
for m in "${mutations[@]}"; do
  IFS='|' read -r name file subst rest <<<"$m"
  # The -run pattern may itself hold '|': everything after the third field.
  args=${m#*|*|*|}
  if [ ${#want[@]} -gt 0 ] && [[ ! " ${want[*]} " == *" $name "* ]]; then
    continue
  fi
  rm -rf "$scratch/tree"
  mkdir -p "$scratch/tree"
  (cd "$top" && git ls-files -z | xargs -0 cp --parents -t "$scratch/tree")
  before=$(sha256sum "$scratch/tree/$file" | cut -d' ' -f1)
  perl -0pi -e "$subst" "$scratch/tree/$file"
  if [ "$(sha256sum "$scratch/tree/$file" | cut -d' ' -f1)" = "$before" ]; then
    printf '%-26s %-9s %s\n' "$name" "STALE" "the substitution no longer matches $file: update .ci/mutate.sh"
    survivors=$((survivors + 1))
    continue
  fi
  read -r -a argv <<<"${args% -run *}"
  run=()
  [[ "$args" == *" -run "* ]] && run=(-run "${args#* -run }")
  log="$scratch/$name.log"
  if (cd "$scratch/tree" && go test "${argv[@]}" "${run[@]}" >"$log" 2>&1); then
    printf '%-26s %-9s %s\n' "$name" "SURVIVED" "$args"
    survivors=$((survivors + 1))
  else
    caught=$(grep -E '^--- FAIL' "$log" | sed -E 's/^--- FAIL: ([^ ]+).*/\1/' | sort -u | tr '\n' ' ')
    printf '%-26s %-9s %s\n' "$name" "caught" "${caught:-build or package failure}"
  fi
done
exit "$survivors"
