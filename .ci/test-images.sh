#!/usr/bin/env bash
# Builds the Docker images the tests use, without any registry: a root
# filesystem made from Debian's busybox-static, imported with `docker import`.
# Idempotent: an image that already exists is left alone.
#
#   hakuriver-test/busybox:latest  ~2 MB: /bin/sh and every busybox applet,
#                                  /tmp, /etc/passwd (root). For command tasks
#                                  and environment containers.
set -euo pipefail

image="hakuriver-test/busybox:latest"

if ! docker info >/dev/null 2>&1; then
  echo "test-images: Docker is not reachable; skipping" >&2
  exit 0
fi
if docker image inspect "$image" >/dev/null 2>&1; then
  echo "test-images: $image exists"
  exit 0
fi

# busybox-static installs /bin/busybox, a statically linked binary that runs
# in an empty root filesystem.
bb=/bin/busybox
if ! [ -x "$bb" ] || ! file -L "$bb" 2>/dev/null | grep -q 'statically linked'; then
  if ! dpkg -s busybox-static >/dev/null 2>&1; then
    echo "test-images: installing busybox-static"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq busybox-static >/dev/null
  fi
fi
if ! [ -x "$bb" ]; then
  echo "test-images: $bb missing after installing busybox-static" >&2
  exit 1
fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,tmp,etc,root,proc,sys,dev,shared,local_temp}
chmod 1777 "$root/tmp"
cp "$bb" "$root/bin/busybox"
# The applet links (/bin/sh, /bin/cat, ...) point at /bin/busybox inside the
# image: install them from inside the root filesystem.
if ! chroot "$root" /bin/busybox --install -s 2>/dev/null; then
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
