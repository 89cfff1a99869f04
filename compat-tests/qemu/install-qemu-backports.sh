#!/bin/bash
# Unpacks the newest QEMU that Debian 12 can install (bookworm-backports:
# qemu-system-x86 10.0.x) into DEST, beside the system's QEMU 7.2, without
# touching the system: apt reads a private sources list and package lists
# under the cache, `apt-get download` fetches the .debs and `dpkg-deb -x`
# unpacks them. The binary is relocatable: it finds its firmware (the
# backports SeaBIOS it needs, >= 1.16.3) and data under DEST/usr/share.
# Its libraries are a subset of those of the system's qemu-system-x86 7.2,
# which `make deps` installs.
#
#   install-qemu-backports.sh DEST CACHE
#
# Idempotent: does nothing when DEST/usr/bin/qemu-system-x86_64 runs.
set -euo pipefail
dest=${1:?usage: $0 DEST CACHE}
cache=${2:?usage: $0 DEST CACHE}
bin=$dest/usr/bin/qemu-system-x86_64
if [ -x "$bin" ] && "$bin" --version >/dev/null 2>&1; then
	exit 0
fi
apt_dir=$cache/apt-backports
mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial" "$apt_dir/debs"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
echo "deb [signed-by=$keyring] http://deb.debian.org/debian bookworm-backports main" \
	>"$apt_dir/sources.list"
opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
	-o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache::Archives=$apt_dir/archives"
	-o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache=
	-o "APT::Sandbox::User=$(id -un)")
echo "==> QEMU from bookworm-backports into $dest"
apt-get -qq "${opts[@]}" update
rm -f "$apt_dir"/debs/*.deb
(cd "$apt_dir/debs" && apt-get -qq "${opts[@]}" download \
	qemu-system-x86/bookworm-backports qemu-system-common/bookworm-backports \
	qemu-system-data/bookworm-backports seabios/bookworm-backports)
rm -rf "$dest.tmp"
mkdir -p "$dest.tmp"
for d in "$apt_dir"/debs/*.deb; do
	dpkg-deb -x "$d" "$dest.tmp"
done
missing=$(ldd "$dest.tmp/usr/bin/qemu-system-x86_64" | awk '/not found/ {print $1}')
if [ -n "$missing" ]; then
	echo "error: QEMU from backports needs libraries this system lacks: $missing" >&2
	echo "       (install Debian's qemu-system-x86, which brings them: make deps)" >&2
	exit 1
fi
"$dest.tmp/usr/bin/qemu-system-x86_64" --version | head -1
rm -rf "$dest"
mv "$dest.tmp" "$dest"
