#!/usr/bin/env bash
# Prepare the kernel lab: install host packages, fetch the Debian cloud kernel,
# and build the base initramfs (busybox, kmod, iproute2, ipvsadm, tcpdump, their
# libraries and the kernel modules the lab needs).
#
# Idempotent: a second run only checks the stamp and exits. Everything lands in
# ${LVS_CACHE:-<repo>/.cache}/kernel-lab/; the result is described by
# kernel-lab/current.env (sourced by run-vm.sh).
#
# Environment:
#   LVS_KERNEL_PKG  Debian kernel package to use (default: what
#                   linux-image-cloud-amd64 depends on right now)
#   LVS_CACHE       cache root (default <repo>/.cache)
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=../lib/common.sh
. "$HERE/../lib/common.sh"

KLAB="$LVS_CACHE/kernel-lab"
QUIET=0
[ "${1:-}" = "--quiet" ] && QUIET=1
say() { [ "$QUIET" -eq 1 ] || lvs_log "$@"; }

# Host packages: the VM runner, the guest userland and the tools to build it.
HOST_PKGS=(qemu-system-x86 busybox-static kmod cpio gzip ipvsadm iproute2 tcpdump binutils libc-bin nftables)

# Modules copied into the guest (with their dependencies). All must exist.
MODULES=(
    ip_vs ip_vs_rr ip_vs_wrr ip_vs_lc ip_vs_wlc ip_vs_lblc ip_vs_lblcr ip_vs_dh
    ip_vs_sh ip_vs_sed ip_vs_nq ip_vs_mh ip_vs_fo ip_vs_ovf
    nf_conntrack nf_defrag_ipv4 nf_defrag_ipv6
    nf_tables nfnetlink nf_nat nft_chain_nat nft_ct nft_masq
    ipip tunnel4 ip_tunnel fou fou6 ip6_tunnel tunnel6 ip_gre gre ip6_gre sit
    veth bridge dummy nlmon macvlan
    virtio_pci virtio_net virtio_rng
    sch_netem inet_diag tcp_diag udp_diag
    sctp
)

# Dynamic binaries copied into the guest with the libraries ldd lists.
GUEST_BINS=(/usr/bin/ip /usr/sbin/ipvsadm /usr/bin/kmod /usr/bin/tcpdump /usr/bin/ss /usr/sbin/bridge /usr/sbin/nft)
# busybox applets NOT linked: the real tools above take their place.
BUSYBOX_SKIP=" ip modprobe insmod rmmod lsmod depmod modinfo init linuxrc "

lvs_need_root
mkdir -p "$KLAB/debs"
# Several runners may start at once (run-vm.sh calls this script): one at a time.
exec 9>"$KLAB/.setup.lock"
flock 9
lvs_apt_ensure "${HOST_PKGS[@]}"

# --- which kernel -----------------------------------------------------------
resolve_kernel_pkg() {
    apt-cache depends linux-image-cloud-amd64 2>/dev/null \
        | awk '/Depends: linux-image-[0-9].*-cloud-amd64/ { if (!p) p = $2 } END { print p }'
}
KPKG="${LVS_KERNEL_PKG:-}"
if [ -z "$KPKG" ]; then
    KPKG="$(resolve_kernel_pkg)"
    if [ -z "$KPKG" ]; then
        say "linux-image-cloud-amd64 unknown to apt-cache; running apt-get update"
        lvs_apt update >&2 || true
        KPKG="$(resolve_kernel_pkg)"
    fi
    if [ -z "$KPKG" ] && [ -f "$KLAB/current.env" ]; then
        # Offline with a cache: keep the kernel we already have.
        KPKG="$(. "$KLAB/current.env"; echo "$KERNEL_PKG")"
        say "cannot resolve the cloud kernel through apt; using cached $KPKG"
    fi
    [ -n "$KPKG" ] || lvs_die "cannot resolve linux-image-cloud-amd64 to a versioned package (apt-cache depends)"
fi

# --- stamp: skip the work when nothing changed ----------------------------------
pkg_versions="$(dpkg-query -W -f='${Package}=${Version}\n' busybox-static kmod iproute2 ipvsadm tcpdump libc6 2>/dev/null)"
STAMP="$( { cat "$0"; echo "$KPKG"; echo "$pkg_versions"; } | sha256sum | cut -c1-16)"
if [ -f "$KLAB/current.env" ] && grep -qx "BASE_STAMP=$STAMP" "$KLAB/current.env" \
    && [ -f "$(. "$KLAB/current.env"; echo "$BASE_CPIO")" ]; then
    say "kernel lab up to date ($KPKG, stamp $STAMP)"
    exit 0
fi
t0="$(lvs_now_ms)"

# --- fetch and unpack the kernel -------------------------------------------------
deb="$(ls "$KLAB/debs/${KPKG}_"*.deb 2>/dev/null | head -n1 || true)"
if [ -z "$deb" ]; then
    say "apt-get download $KPKG"
    # apt drops privileges to _apt for downloads; give it a directory it can write.
    dl="$(mktemp -d)"; chmod 777 "$dl"
    (cd "$dl" && lvs_apt download "$KPKG" >&2) || lvs_die "apt-get download $KPKG failed"
    mv "$dl"/*.deb "$KLAB/debs/"; rmdir "$dl"
    deb="$(ls "$KLAB/debs/${KPKG}_"*.deb | head -n1)"
fi
KROOT="$KLAB/kernel/$KPKG"
if [ ! -f "$KROOT/.unpacked" ]; then
    say "unpacking $(basename "$deb")"
    rm -rf "$KROOT"; mkdir -p "$KROOT"
    dpkg-deb -x "$deb" "$KROOT"
    touch "$KROOT/.unpacked"
fi
KVER="$(ls "$KROOT/lib/modules" | head -n1)"
[ -n "$KVER" ] || lvs_die "no lib/modules/<version> in $deb"
VMLINUZ="$KROOT/boot/vmlinuz-$KVER"
[ -f "$VMLINUZ" ] || lvs_die "no kernel image $VMLINUZ in $deb"
[ -f "$KROOT/lib/modules/$KVER/modules.dep" ] || depmod -b "$KROOT" "$KVER"

# --- base initramfs tree ------------------------------------------------------------
# Built aside and renamed into place; run-vm.sh reads base-tree for library checks.
TREE="$KLAB/base-tree.new"
rm -rf "$TREE"; mkdir -p "$TREE"
(
    cd "$TREE"
    mkdir -p usr/bin usr/sbin usr/lib usr/lib64 etc proc sys dev run tmp root lab out var mnt
    ln -s usr/bin bin; ln -s usr/sbin sbin; ln -s usr/lib lib; ln -s usr/lib64 lib64
    ln -s ../run var/run
    chmod 1777 tmp
)

# copy_file SRC DEST_IN_TREE: dereference symlinks, keep the mode.
copy_file() { mkdir -p "$TREE$(dirname "$2")"; cp -L --preserve=mode "$1" "$TREE$2"; }

# copy_libs BIN: copy the shared libraries ldd lists for BIN into the tree.
copy_libs() {
    local lib
    ldd "$1" 2>/dev/null | awk '/=> \// {print $3} /^[ \t]*\/[^ ]+ \(/ {print $1}' | while read -r lib; do
        [ -e "$TREE$lib" ] || copy_file "$lib" "$lib"
    done
}

copy_file /bin/busybox /usr/bin/busybox
for applet in $(/bin/busybox --list); do
    case "$BUSYBOX_SKIP" in *" $applet "*) continue ;; esac
    [ -e "$TREE/usr/bin/$applet" ] || ln -s busybox "$TREE/usr/bin/$applet"
done
for b in "${GUEST_BINS[@]}"; do
    [ -x "$b" ] || lvs_die "missing host binary $b"
    copy_file "$b" "$b"
    copy_libs "$b"
done
ln -s ../bin/ip "$TREE/usr/sbin/ip"
for k in modprobe depmod insmod rmmod lsmod modinfo; do ln -s ../bin/kmod "$TREE/usr/sbin/$k"; done
cat >"$TREE/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$TREE/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
printf '127.0.0.1 localhost\n::1 localhost\n' >"$TREE/etc/hosts"

# Modules with their dependencies, then a fresh modules.dep for the subset.
mdir="lib/modules/$KVER"
mkdir -p "$TREE/$mdir"
for f in modules.order modules.builtin modules.builtin.modinfo; do
    [ -f "$KROOT/$mdir/$f" ] && cp "$KROOT/$mdir/$f" "$TREE/$mdir/"
done
for m in "${MODULES[@]}"; do
    deps="$(modprobe -d "$KROOT" -S "$KVER" --show-depends "$m" 2>&1)" \
        || lvs_die "module $m not available in $KPKG: $deps"
    printf '%s\n' "$deps" | awk '$1 == "insmod" {print $2}' | while read -r ko; do
        rel="${ko#"$KROOT"/}"
        mkdir -p "$TREE/$(dirname "$rel")"
        cp "$ko" "$TREE/$rel"
    done
done
depmod -b "$TREE" "$KVER"

# Pack the base archive. Uncompressed: the guest then only copies it, which is
# faster under TCG than inflating it. A new name per stamp, so a runner still
# copying the previous archive is not disturbed.
BASE_CPIO="$KLAB/base-$KVER-$STAMP.cpio"
(cd "$TREE" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) >"$BASE_CPIO.tmp"
mv "$BASE_CPIO.tmp" "$BASE_CPIO"
rm -rf "$KLAB/base-tree.old"
[ -d "$KLAB/base-tree" ] && mv "$KLAB/base-tree" "$KLAB/base-tree.old"
mv "$TREE" "$KLAB/base-tree"
rm -rf "$KLAB/base-tree.old"
# Keep the two newest archives.
ls -1t "$KLAB"/base-*.cpio | tail -n +3 | xargs -r rm -f

cat >"$KLAB/current.env.tmp" <<EOF
# Generated by e2e/kernel/setup.sh; sourced by run-vm.sh.
KERNEL_PKG=$KPKG
KERNEL_VERSION=$KVER
VMLINUZ=$VMLINUZ
BASE_CPIO=$BASE_CPIO
BASE_STAMP=$STAMP
EOF
mv "$KLAB/current.env.tmp" "$KLAB/current.env"
say "kernel lab ready: $KPKG ($KVER), base $(du -h "$BASE_CPIO" | cut -f1), $(( ($(lvs_now_ms) - t0) )) ms"
