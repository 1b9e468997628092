#!/usr/bin/env bash
# Builds the Docker images the tests use, without any registry, each from a
# root filesystem imported with `docker import`. Idempotent: an image that
# already exists is left alone.
#
#   hakuriver-test/busybox:latest  ~2 MB: Debian's busybox-static; /bin/sh
#                                  and every busybox applet, /tmp,
#                                  /etc/passwd (root). For command tasks and
#                                  environment containers.
#   hakuriver-test/sshd:latest     ~230 MB: Debian bookworm from
#                                  `debootstrap --variant=minbase
#                                  --include=openssh-server` against the apt
#                                  mirror this machine is configured with,
#                                  without SSH host keys (each VPS generates
#                                  its own). For VPS tasks. The root
#                                  filesystem tarball is cached in
#                                  $HAKURIVER_TEST_CACHE (default
#                                  /var/cache/hakuriver-test), so building it
#                                  again after `docker rmi` is only an import.
#
# Usage: test-images.sh [busybox|sshd]...   (default: all of them)
set -euo pipefail

cache_dir="${HAKURIVER_TEST_CACHE:-/var/cache/hakuriver-test}"

# Temporary directories, removed on exit (also when a step fails).
tmp_dirs=()
cleanup() {
  local d
  for d in "${tmp_dirs[@]}"; do
    # debootstrap mounts /proc and /sys in the target; an interrupted run
    # can leave them mounted.
    umount -l "$d/proc" "$d/sys" 2>/dev/null || true
    rm -rf --one-file-system "$d"
  done
}
trap cleanup EXIT

if ! docker info >/dev/null 2>&1; then
  echo "test-images: Docker is not reachable; skipping" >&2
  exit 0
fi

build_busybox() {
  local image="hakuriver-test/busybox:latest"
  if docker image inspect "$image" >/dev/null 2>&1; then
    echo "test-images: $image exists"
    return 0
  fi

  # busybox-static installs /bin/busybox, a statically linked binary that
  # runs in an empty root filesystem.
  local bb=/bin/busybox
  if ! [ -x "$bb" ] || ! file -L "$bb" 2>/dev/null | grep -q 'statically linked'; then
    if ! dpkg -s busybox-static >/dev/null 2>&1; then
      echo "test-images: installing busybox-static"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq && apt-get install -y -qq busybox-static >/dev/null
    fi
  fi
  if ! [ -x "$bb" ]; then
    echo "test-images: $bb missing after installing busybox-static" >&2
    return 1
  fi

  local root
  root=$(mktemp -d)
  tmp_dirs+=("$root")
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,tmp,etc,root,proc,sys,dev,shared,local_temp}
  chmod 1777 "$root/tmp"
  cp "$bb" "$root/bin/busybox"
  # The applet links (/bin/sh, /bin/cat, ...) point at /bin/busybox inside
  # the image: install them from inside the root filesystem.
  if ! chroot "$root" /bin/busybox --install -s 2>/dev/null; then
    local applet
    for applet in $("$root/bin/busybox" --list); do
      [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
    done
  fi
  [ -e "$root/bin/sh" ] || ln -s busybox "$root/bin/sh"
  cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
  cat >"$root/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF

  tar -C "$root" -c . | docker import \
    --change 'CMD ["/bin/sh"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --message "hakuriver test image (busybox-static)" \
    - "$image" >/dev/null
  echo "test-images: built $image ($(docker image inspect -f '{{.Size}}' "$image") bytes)"
}

# debian_mirror prints the Debian archive URL apt is configured with: the
# first URIs of a deb822 stanza in /etc/apt/sources.list.d/*.sources, else
# the first "deb" line of /etc/apt/sources.list or sources.list.d/*.list,
# skipping the security archive and any third-party repository.
debian_mirror() {
  local f uri
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    uri=$(awk '
      /^[[:space:]]*$/ { if (uris != "" && debian) { print uris; exit } uris = ""; debian = 0; next }
      /^URIs:/ { uris = $2 }
      /^Suites:/ { for (i = 2; i <= NF; i++) if ($i ~ /^(bookworm|stable|sid|trixie|bullseye)$/) debian = 1 }
      END { if (uris != "" && debian) print uris }
    ' "$f" | grep -v -- '-security' | head -n1)
    if [ -n "$uri" ]; then
      echo "$uri"
      return 0
    fi
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    uri=$(awk '$1 == "deb" { u = $2; if ($2 ~ /^\[/) { for (i = 2; i <= NF; i++) if ($i ~ /\]$/) { u = $(i+1); break } } print u }' "$f" |
      grep -E '/debian/?$' | grep -v -- '-security' | head -n1)
    if [ -n "$uri" ]; then
      echo "$uri"
      return 0
    fi
  done
  return 1
}

build_sshd() {
  local image="hakuriver-test/sshd:latest"
  if docker image inspect "$image" >/dev/null 2>&1; then
    echo "test-images: $image exists"
    return 0
  fi
  # One build at a time (concurrent test packages may all ask for it).
  mkdir -p "$cache_dir"
  exec 9>"$cache_dir/sshd.lock"
  flock 9
  if docker image inspect "$image" >/dev/null 2>&1; then
    echo "test-images: $image exists"
    return 0
  fi
  local rootfs="$cache_dir/sshd-bookworm-minbase.tar"
  if ! [ -s "$rootfs" ]; then
    if ! command -v debootstrap >/dev/null 2>&1; then
      echo "test-images: installing debootstrap"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null
    fi
    local mirror
    if ! mirror=$(debian_mirror); then
      echo "test-images: no Debian mirror found in /etc/apt/sources.list{,.d/*}" >&2
      return 1
    fi
    local root
    root=$(mktemp -d "$cache_dir/rootfs.XXXXXX")
    tmp_dirs+=("$root")
    echo "test-images: debootstrap bookworm (minbase + openssh-server) from $mirror"
    local start=$SECONDS
    if ! debootstrap --variant=minbase --include=openssh-server bookworm "$root" "$mirror" >"$root.log" 2>&1; then
      tail -n 30 "$root.log" >&2
      rm -f "$root.log"
      echo "test-images: debootstrap failed" >&2
      return 1
    fi
    rm -f "$root.log"
    # Host keys generated at install time would be shared by every VPS:
    # each container generates its own (ssh-keygen -A) instead. Package
    # caches only make the image larger.
    rm -f "$root"/etc/ssh/ssh_host_*
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*.log
    tar -C "$root" --numeric-owner -c . >"$rootfs.tmp"
    mv "$rootfs.tmp" "$rootfs"
    echo "test-images: root filesystem cached in $rootfs ($((SECONDS - start)) s)"
  fi
  docker import \
    --change 'CMD ["/bin/bash"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --message "hakuriver test image (debian bookworm minbase + openssh-server)" \
    - "$image" <"$rootfs" >/dev/null
  echo "test-images: built $image ($(docker image inspect -f '{{.Size}}' "$image") bytes)"
  exec 9>&-
}

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(busybox sshd)
for t in "${targets[@]}"; do
  case "$t" in
    busybox) build_busybox ;;
    sshd) build_sshd ;;
    *) echo "test-images: unknown image $t (want busybox or sshd)" >&2; exit 2 ;;
  esac
done
