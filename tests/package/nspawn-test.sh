#!/bin/bash
# The systemd check: the built .debs installed into a throwaway root booted
# by a real systemd (systemd-nspawn --boot), and a password change through
# the installed mpasswdd.socket and mpasswdd@.service, with the units' full
# sandbox and the real pam_unix and pam_pwquality.
#
# How (design/testing.md, "A real systemd as PID 1"): systemd-container is
# unpacked with dpkg -x (never installed: on this image that would upgrade
# the host's systemd), at the version of the host's systemd. In private
# mount namespaces, an overlay of / with its upper layer on a tmpfs is
# booted with systemd-nspawn --boot --private-network; everything written
# there (dpkg, useradd, /etc/shadow, the journal) vanishes with it. The
# host's /etc, units and dpkg database are hashed before and after.
#
# Checked inside: dpkg -i of the three packages and libpam-pwquality; a
# controller entry; mpasswd (installed) changing alice's password through
# 127.0.0.1:4242, the weak password refused by pam_pwquality in TEST and
# nothing changed; systemd-analyze security of mpasswdd@.service (printed);
# the journal holding no seccomp kill, no permission error and no secret.
#
# Exit 77 (skip) with the reason where this machine cannot boot it; under
# CI=true the same is a failure.
#
# usage: nspawn-test.sh SOURCE_DIR DEB_CACHE   (root)
#        nspawn-test.sh --in-namespace ...    (internal)
set -euo pipefail

fail() { echo "FAIL: $*"; exit 1; }
ok() { echo "ok: $*"; }
cannot() {  # the machine cannot do it: skip, or fail in CI
    if [ "${CI:-}" = true ]; then
        fail "cannot run under CI=true: $*"
    fi
    echo "SKIP: $*"
    exit 77
}

SECRET_PW='Syst3md-Fleet-Pw!42'
WEAK_PW='abc12'
OLD_PW='Old-Passw0rd-1'

# --- inside the booted container (run through nsenter) ----------------------
in_container() {
    export DEBIAN_FRONTEND=noninteractive
    local debs=/var/tmp/debs
    rm -f /usr/sbin/policy-rc.d  # this image's says 101: no service would start
    dpkg -i "$debs"/*.deb > /var/tmp/dpkg.log 2>&1 || { cat /var/tmp/dpkg.log; fail "dpkg -i"; }
    for p in mpasswdd mpasswd libpam-mctp libpam-pwquality; do
        dpkg-query -W -f='${Status}' "$p" | grep "install ok installed" >/dev/null ||
            fail "$p is not installed"
    done
    ok "dpkg -i: mpasswdd, mpasswd, libpam-mctp and libpam-pwquality installed"
    systemctl is-enabled --quiet mpasswdd.socket || fail "mpasswdd.socket is not enabled"
    systemctl is-active --quiet mpasswdd.socket || systemctl start mpasswdd.socket
    systemctl is-active --quiet mpasswdd.socket || fail "mpasswdd.socket does not start"
    ok "mpasswdd.socket enabled and listening (started by systemd, PID 1)"

    useradd -m -s /bin/bash alice
    echo "alice:$OLD_PW" | chpasswd
    # The controller (this same host, 127.0.0.1) and its entry on the target.
    mpasswdd --new-secret /etc/mpasswd/secret > /var/tmp/verifier
    { printf '\n[controller ctl1]\nfrom = 127.0.0.1, ::1\n'; cat /var/tmp/verifier; } \
        >> /etc/mpasswd/mpasswdd.conf
    mpasswdd --check-config > /dev/null || fail "mpasswdd --check-config"
    printf 'name = ctl1\nsecret_file = /etc/mpasswd/secret\nhosts = /etc/mpasswd/hosts\n' \
        > /etc/mpasswd/mpasswd.conf
    echo 127.0.0.1 > /etc/mpasswd/hosts
    ok "a controller entry (from 127.0.0.1) and the controller's configuration"

    local before after out rc
    before=$(getent shadow alice | cut -d: -f2)
    rc=0
    out=$(printf '%s\n' "$WEAK_PW" | mpasswd --stdin alice 2>&1) || rc=$?
    echo "$out" | sed 's/^/  | /'
    [ "$rc" = 1 ] || fail "the weak password: exit $rc, not 1"
    echo "$out" | grep -Eq 'refused +554 +TEST' || fail "the weak password was not refused in TEST"
    [ "$(getent shadow alice | cut -d: -f2)" = "$before" ] || fail "the weak password changed shadow"
    ok "the weak password refused by pam_pwquality in TEST (554); shadow unchanged"

    rc=0
    out=$(printf '%s\n' "$SECRET_PW" | mpasswd --stdin alice 2>&1) || rc=$?
    [ "$rc" = 0 ] || { echo "$out"; fail "mpasswd exit $rc"; }
    echo "$out" | sed 's/^/  | /'
    after=$(getent shadow alice | cut -d: -f2)
    [ "$after" != "$before" ] || fail "shadow did not change"
    PW=$SECRET_PW H=$after perl -e 'exit(crypt($ENV{PW}, $ENV{H}) eq $ENV{H} ? 0 : 1)' ||
        fail "alice's new password does not verify"
    ok "changed through mpasswdd.socket and mpasswdd@.service: the new password verifies"

    local units
    units=$(journalctl --no-pager -q -o short -u 'mpasswdd@*' |
        grep -Ec 'mpasswdd\[[0-9]+\]: password changed for alice$' || true)
    [ "$units" = 1 ] || {
        journalctl --no-pager -q -b -o short | tail -n 40
        fail "the journal of mpasswdd@.service does not show the one change"
    }
    ok "mpasswdd@.service made the change (its journal: password changed for alice)"

    echo "# systemd-analyze security mpasswdd@0.service"
    systemd-analyze security --no-pager mpasswdd@0.service | tail -n 1 | sed 's/^/  /'

    journalctl --sync 2> /dev/null || true
    local journal
    journal=$(journalctl --no-pager -q -b -o short)
    if echo "$journal" | grep -Ei 'seccomp|SIGSYS|status=31/SYS|Bad system call|Permission denied|Operation not permitted|Read-only file system|EACCES|EPERM' |
        grep -i mpasswd; then
        fail "seccomp or permission errors in the journal (above)"
    fi
    ok "the journal has no seccomp kill and no permission error from mpasswdd"
    local secret
    secret=$(head -n 1 /etc/mpasswd/secret)
    for s in "$SECRET_PW" "$WEAK_PW" "$OLD_PW" "$secret"; do
        if journalctl --no-pager -q -b -o verbose | grep -F -- "$s" >/dev/null ||
            grep -rqF -- "$s" /var/log 2> /dev/null; then
            fail "a password or the secret is in the journal or /var/log"
        fi
    done
    ok "no password and no secret in the journal or /var/log"
}

# --- in private mount namespaces: the overlay, the boot ---------------------
in_namespace() {
    local debs=$1 container_deb=$2
    mount --make-rprivate /
    # nspawn keeps state under /run/systemd/nspawn: a private /run, so that
    # none of it is left on the host.
    mount -t tmpfs -o mode=0755 tmpfs /run
    local s
    s=$(mktemp -d /run/mpasswd-nspawn.XXXXXX)  # on the private /run: gone with it
    mount -t tmpfs -o mode=0700 tmpfs "$s"
    mkdir "$s/upper" "$s/work" "$s/root" "$s/nspawn"
    mount -t overlay overlay -o "lowerdir=/,upperdir=$s/upper,workdir=$s/work" "$s/root"
    dpkg-deb -x "$container_deb" "$s/nspawn"
    local r=$s/root
    # Units that make no sense in a throwaway boot, masked in the overlay.
    for u in postgresql.service getty@tty1.service console-getty.service \
        systemd-timesyncd.service e2scrub_reap.service systemd-pstore.service \
        apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer \
        fstrim.timer man-db.timer remote-fs.target; do
        ln -sf /dev/null "$r/etc/systemd/system/$u"
    done
    mkdir -p "$r/var/tmp/debs"
    cp "$debs"/mpasswdd_*.deb "$debs"/mpasswd_*.deb "$debs"/libpam-mctp_*.deb \
        "$PWQUALITY_DEB" "$r/var/tmp/debs/"
    cp "$0" "$r/var/tmp/nspawn-test.sh"
    rm -f "$r/etc/machine-id"
    : > "$r/etc/machine-id"

    local log=$s/nspawn.log
    "$s/nspawn/usr/bin/systemd-nspawn" -q -D "$r" --boot --private-network --register=no \
        --keep-unit --console=passive > "$log" 2>&1 &
    local nspawn=$!
    local leader=""
    for _ in $(seq 1 300); do
        # The container's PID 1: nspawn's child running systemd.
        leader=$(ps -o pid=,comm= --ppid "$nspawn" 2> /dev/null |
            awk '$2 == "systemd" { print $1; exit }') || true
        [ -n "$leader" ] && break
        kill -0 "$nspawn" 2> /dev/null || break
        sleep 0.1
    done
    if [ -z "$leader" ]; then
        cat "$log"
        wait "$nspawn" || true
        echo "systemd-nspawn did not start a container here (log above)"
        return 3
    fi
    local state=""
    for _ in $(seq 1 120); do
        state=$(nsenter -a -t "$leader" systemctl is-system-running 2> /dev/null) || true
        case "$state" in running | degraded) break ;; esac
        sleep 0.5
    done
    echo "# booted: systemd $(nsenter -a -t "$leader" systemctl --version | head -n 1 |
        cut -d' ' -f2) as PID 1 of the container, state $state"
    case "$state" in
        running | degraded) ;;
        *) cat "$log"; kill "$nspawn"; wait "$nspawn" || true; fail "the container did not boot ($state)" ;;
    esac
    if [ "$state" = degraded ]; then
        nsenter -a -t "$leader" systemctl --failed --no-pager --plain | sed 's/^/  failed unit: /'
    fi
    local rc=0
    nsenter -a -t "$leader" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C \
        /bin/bash /var/tmp/nspawn-test.sh --in-container || rc=$?
    kill "$nspawn" 2> /dev/null || true  # SIGTERM: an orderly shutdown
    for _ in $(seq 1 100); do
        kill -0 "$nspawn" 2> /dev/null || break
        sleep 0.1
    done
    kill -9 "$nspawn" 2> /dev/null || true
    wait "$nspawn" 2> /dev/null || true
    return "$rc"
}

# --- on the host ------------------------------------------------------------

main() {
    local src=$1 cache=$2
    # shellcheck source=host-state.sh
    . "$(dirname "$0")/host-state.sh"
    [ "$(id -u)" -eq 0 ] || cannot "needs root (mount namespaces, overlayfs, systemd-nspawn)"
    command -v nsenter > /dev/null && command -v unshare > /dev/null ||
        cannot "no nsenter or unshare (util-linux)"
    [ -d /lib/systemd/system ] && [ -x /lib/systemd/systemd ] ||
        cannot "this root file system has no systemd to boot"
    local start=$SECONDS
    # systemd-container at the version of this machine's systemd, unpacked
    # only (cached as install-deps caches its .debs).
    local version debdir=$src/.deps/debs container_deb
    version=$(dpkg-query -W -f='${Version}' systemd)
    container_deb=$(ls "$debdir"/systemd-container_"${version//:/%3a}"_*.deb 2> /dev/null |
        head -n 1) || true
    if [ -z "$container_deb" ]; then
        local tmp
        tmp=$(mktemp -d)
        chown _apt "$tmp" 2> /dev/null || chmod 777 "$tmp"
        (cd "$tmp" && apt-get download -qq "systemd-container=$version") ||
            cannot "systemd-container $version cannot be downloaded"
        mkdir -p "$debdir"
        cp "$tmp"/systemd-container_*.deb "$debdir/"
        rm -rf "$tmp"
        container_deb=$(ls "$debdir"/systemd-container_*"${version//:/%3a}"_*.deb | head -n 1)
    fi
    PWQUALITY_DEB=$(ls "$debdir"/libpam-pwquality_*.deb 2> /dev/null | head -n 1) ||
        true
    [ -n "$PWQUALITY_DEB" ] || cannot "no libpam-pwquality .deb in $debdir (run scripts/install-deps)"
    export PWQUALITY_DEB
    local debs
    debs=$("$(dirname "$0")/debs.sh" "$src" "$cache")
    local before
    before=$(host_state)
    local rc=0
    unshare --mount --fork -- "$0" --in-namespace "$debs" "$container_deb" || rc=$?
    [ "$(host_state)" = "$before" ] || fail "the host's /etc, units or dpkg database changed"
    ok "the host's /etc, units and dpkg database are unchanged"
    [ "$rc" = 3 ] && cannot "systemd-nspawn cannot boot a container on this machine"
    [ "$rc" = 0 ] || fail "inside the container (above)"
    echo "# the systemd suite took $((SECONDS - start)) s"
}

case "${1:-}" in
    --in-container) in_container ;;
    --in-namespace) shift; in_namespace "$@" ;;
    *) main "$(cd "${1:-$(dirname "$0")/../..}" && pwd)" \
        "${2:-$(cd "${1:-$(dirname "$0")/../..}" && pwd)/build/package-debs}" ;;
esac
