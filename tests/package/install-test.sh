#!/bin/bash
# The package check: builds the .debs from a clean copy of the tree
# (scripts/build-deb, which also runs lintian and fails on any error or
# warning), installs them into a throwaway root and runs MCTP sessions
# against the installed responder, with the installed PAM service, units
# and configuration, driven by the installed mpasswd.
#
# The throwaway root is an overlay of this machine's root file system with
# its upper layer on a tmpfs, inside private mount, network and PID
# namespaces: dpkg, pam-auth-update, useradd and pam_unix write only to the
# tmpfs, which vanishes with the namespaces. The host's /etc, dpkg database
# and PAM stack are hashed before and after to prove it.
#
# usage: install-test.sh SOURCE_DIR [DEB_CACHE]   (root; the .debs are
#        built by debs.sh into DEB_CACHE, shared with the systemd suite)
#        install-test.sh --in-namespace ...  (internal)
#        install-test.sh --in-root ...       (internal)
set -euo pipefail

fail() { echo "FAIL: $*"; exit 1; }
ok() { echo "ok: $*"; }

# --- stage 3: inside the throwaway root -------------------------------------
in_root() {
    local debs=/tmp/debs
    local multiarch
    multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
    export DEBIAN_FRONTEND=noninteractive

    echo "# install mpasswdd, mpasswd, libpam-mctp (dpkg -i, maintainer scripts run)"
    dpkg -i "$debs"/mpasswdd_*.deb "$debs"/mpasswd_*.deb "$debs"/libpam-mctp_*.deb \
        > /tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log; fail "dpkg -i"; }
    for p in mpasswdd mpasswd libpam-mctp; do
        dpkg-query -W -f='${Status}' "$p" | grep "install ok installed" >/dev/null ||
            fail "$p is not installed"
    done
    ok "the three packages are installed and configured"

    getent passwd _mpasswdd > /dev/null || fail "postinst did not create the user _mpasswdd"
    [ "$(stat -c %a:%U:%G /usr/share/mpasswdd/empty)" = "755:root:root" ] &&
        [ -z "$(ls -A /usr/share/mpasswdd/empty)" ] ||
        fail "/usr/share/mpasswdd/empty is not an empty 0755 root folder"
    ok "the network child's user _mpasswdd and empty root folder exist"

    [ -L /etc/systemd/system/sockets.target.wants/mpasswdd.socket ] ||
        fail "mpasswdd.socket was not enabled"
    [ ! -e /etc/systemd/system/multi-user.target.wants/mpasswdd@.service ] ||
        fail "the template service was enabled"
    ok "dh_installsystemd enabled mpasswdd.socket, not the template"

    [ "$(stat -c %a:%U /etc/mpasswd/mpasswdd.conf)" = "600:root" ] || fail "mpasswdd.conf mode"
    [ "$(stat -c %a:%U /etc/mpasswd/mpasswd.conf)" = "600:root" ] || fail "mpasswd.conf mode"
    for f in /etc/mpasswd/mpasswdd.conf /etc/pam.d/mpasswdd /etc/pam.d/mpasswdd-check; do
        grep -qx "$f" /var/lib/dpkg/info/mpasswdd.conffiles || fail "$f is not a conffile"
    done
    grep -qx /etc/mpasswd/mpasswd.conf /var/lib/dpkg/info/mpasswd.conffiles ||
        fail "mpasswd.conf is not a conffile"
    ok "configuration files are conffiles, 0600 root"

    # The hosts file is no conffile (configuration management writes it
    # without conffile prompts): postinst made an empty one; the sample is
    # in the documentation.
    ! grep -q hosts /var/lib/dpkg/info/mpasswd.conffiles || fail "the hosts file is a conffile"
    ! dpkg -S /etc/mpasswd/hosts > /dev/null 2>&1 || fail "a package owns /etc/mpasswd/hosts"
    [ "$(stat -c %a:%U:%G:%s /etc/mpasswd/hosts)" = "644:root:root:0" ] ||
        fail "postinst did not make an empty 0644 /etc/mpasswd/hosts"
    grep -q '^#web1.example.org' /usr/share/doc/mpasswd/examples/hosts ||
        fail "no sample hosts file in /usr/share/doc/mpasswd/examples"
    for d in /etc/mpasswd/mpasswd.conf.d /etc/mpasswd/mpasswdd.conf.d; do
        [ "$(stat -c %a:%U:%G "$d")" = "755:root:root" ] || fail "$d is not a 0755 root folder"
    done
    ok "the hosts file is no conffile: an empty 0644 one made, the sample in the docs; drop-in folders"

    if grep -l pam_mctp /etc/pam.d/common-* 2>/dev/null; then
        fail "installing libpam-mctp changed a PAM stack"
    fi
    ok "installing libpam-mctp changed no PAM stack (profile off by default)"

    local module="/lib/$multiarch/security/pam_mctp.so"
    [ -f "$module" ] || fail "$module missing"
    local exported
    exported=$(nm -D --defined-only "$module" | awk '{print $3}' | grep -v '^$' | sort | tr '\n' ' ')
    [ "$exported" = "pam_sm_chauthtok " ] || fail "pam_mctp.so exports: $exported"
    ok "pam_mctp.so in $module, exporting only pam_sm_chauthtok"

    # Server TLS is a plug-in: mpasswdd maps no OpenSSL unless tls = yes.
    local plugin="/usr/lib/$multiarch/mpasswd/mpasswdd-tls.so"
    [ -f "$plugin" ] || fail "$plugin missing"
    if ldd /usr/sbin/mpasswdd | grep -E 'libssl|libcrypto'; then
        fail "the installed mpasswdd links OpenSSL"
    fi
    ldd "$plugin" | grep libssl >/dev/null || fail "$plugin does not link libssl"
    # The plug-in's own message about a missing file: it was loaded.
    printf 'tls = yes\ntls_certificate = /nonexistent.pem\ntls_key = /nonexistent.key\n' \
        > /tmp/tls.conf
    chmod 600 /tmp/tls.conf
    local rc=0
    mpasswdd -c /tmp/tls.conf --check-config > /tmp/check.log 2>&1 || rc=$?
    [ "$rc" = 78 ] && grep -q "tls_certificate /nonexistent.pem" /tmp/check.log ||
        { cat /tmp/check.log; fail "the TLS plug-in did not load (status $rc)"; }
    ok "mpasswdd links no OpenSSL; with tls = yes it loads $plugin"

    systemd-analyze verify /lib/systemd/system/mpasswdd.socket \
        /lib/systemd/system/mpasswdd@.service > /tmp/verify.log 2>&1 ||
        { cat /tmp/verify.log; fail "systemd-analyze verify"; }
    ok "systemd-analyze verify accepts the installed units"
    echo "# $(systemd-analyze security --offline=yes /lib/systemd/system/mpasswdd@.service 2>&1 |
              tail -n 1)"

    mpasswdd --check-config > /tmp/check.log 2>&1 || { cat /tmp/check.log; fail "--check-config"; }
    ok "mpasswdd --check-config accepts the shipped configuration"

    # The responder as mpasswdd.socket and mpasswdd@.service start it: the
    # port from ListenStream=, the command from ExecStart=, standard error
    # to a file (the journal's place), under the parts of the unit's
    # sandbox that can be had without systemd as PID 1.
    local port exec_start
    port=$(sed -n 's/^ListenStream=//p' /lib/systemd/system/mpasswdd.socket)
    exec_start=$(sed -n 's/^ExecStart=//p' /lib/systemd/system/mpasswdd@.service)
    local caps
    caps=$(sed -n 's/^CapabilityBoundingSet=//p' /lib/systemd/system/mpasswdd@.service |
           tr 'A-Z' 'a-z' | sed 's/cap_/+/g; s/ /,/g')
    # StateDirectory= (and its mode), as systemd makes it before the start.
    local state_dir state_mode
    state_dir=/var/lib/$(sed -n 's/^StateDirectory=//p' /lib/systemd/system/mpasswdd@.service)
    state_mode=$(sed -n 's/^StateDirectoryMode=//p' /lib/systemd/system/mpasswdd@.service)
    [ "$state_dir" = /var/lib/mpasswdd ] && [ "$state_mode" = 0700 ] ||
        fail "the unit's StateDirectory= is not mpasswdd, 0700"
    mkdir -p -m "$state_mode" "$state_dir"
    ip link set lo up
    # syslog: mpasswdd logs there (the journal's /dev/log under systemd).
    /usr/bin/python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("ready", flush=True)
with open(sys.argv[2], "ab", buffering=0) as out:
    while True:
        out.write(s.recv(65536).rstrip(b"\0\n") + b"\n")
' /run/test-syslog /tmp/syslog > /tmp/syslog.ready &
    local syslogd=$!
    for _ in $(seq 100); do grep -q ready /tmp/syslog.ready 2>/dev/null && break; sleep 0.05; done
    # ProtectSystem=strict + ReadWritePaths=/etc + StateDirectory=,
    # PrivateTmp, ProtectHome, PrivateDevices (a /dev of a few nodes), then
    # per connection NoNewPrivileges, CapabilityBoundingSet, UMask and
    # LimitCORE.
    unshare --mount -- sh -c '
        set -e
        mount --bind /etc /etc
        mount --bind /var/lib/mpasswdd /var/lib/mpasswdd
        mount -o remount,bind,ro /
        mount -o remount,bind,ro /run 2>/dev/null || mount --bind -o ro /run /run
        mount -t tmpfs -o mode=1777 tmpfs /tmp
        mount -t tmpfs -o mode=0 tmpfs /home
        mount -t tmpfs -o mode=0 tmpfs /root
        d=$(mktemp -d -p /tmp)
        for n in null zero full random urandom; do touch "$d/$n"; mount --bind "/dev/$n" "$d/$n"; done
        mount -t tmpfs -o mode=755 tmpfs /dev
        for n in null zero full random urandom; do touch "/dev/$n"; mount --bind "$d/$n" "/dev/$n"; done
        ln -s /run/test-syslog /dev/log
        exec systemd-socket-activate -l "127.0.0.1:$0" -a --inetd \
            setpriv --no-new-privs --bounding-set "-all,$1" --inh-caps=-all \
            sh -c "umask 077; ulimit -c 0; exec \"\$@\"" mpasswdd $2
    ' "$port" "$caps" "$exec_start" 2> /tmp/journal &
    local responder=$!
    for _ in $(seq 100); do grep -q "Listening on" /tmp/journal 2>/dev/null && break; sleep 0.05; done
    grep -q "Listening on" /tmp/journal || { cat /tmp/journal; fail "responder did not start"; }

    local banner
    banner=$(printf 'QUIT\r\n' | timeout 10 nc -q 5 127.0.0.1 "$port" | head -n 1)
    case "$banner" in 521*) ;; *) cat /tmp/journal; fail "with the shipped configuration the banner was: $banner";; esac
    ok "the shipped configuration accepts no controller: $banner"

    # A user, a controller secret, the responder's controller entry and the
    # controller's own configuration, as README and the man pages say.
    useradd -m -s /bin/bash alice
    local old_pw='Old-Passw0rd-1!'
    usermod -p "$(perl -e 'print crypt($ARGV[0], q($6$installtest$))' "$old_pw")" alice
    # One command on the control host, one line on the target.
    local verifier_line
    verifier_line=$(mpasswdd --new-secret /etc/mpasswd/secret) || fail "--new-secret"
    [ "$(stat -c %a:%U /etc/mpasswd/secret)" = "600:root" ] || fail "the new secret's mode"
    mpasswdd --new-secret /etc/mpasswd/secret 2> /dev/null && fail "--new-secret overwrote a file"
    # As configuration management writes them: one drop-in per controller
    # on the target, one for the name on the control host.
    printf '[controller control]\nfrom = 127.0.0.1\n%s\n' "$verifier_line" \
        > /etc/mpasswd/mpasswdd.conf.d/control.conf
    chmod 644 /etc/mpasswd/mpasswdd.conf.d/control.conf
    mpasswdd --check-config > /tmp/check.log 2>&1 && fail "a 0644 drop-in with a verifier was read"
    grep -q "control.conf: holds secrets" /tmp/check.log || { cat /tmp/check.log; fail "drop-in mode"; }
    chmod 600 /etc/mpasswd/mpasswdd.conf.d/control.conf
    printf 'name = control\n' > /etc/mpasswd/mpasswd.conf.d/10-name.conf
    mpasswdd --check-config > /tmp/check.log 2>&1 || { cat /tmp/check.log; fail "--check-config"; }
    grep -q '^\[controller control\]' /tmp/check.log || fail "the drop-in's controller is missing"
    mpasswd --check-config | grep -x 'name = control' >/dev/null || fail "mpasswd.conf.d was not read"
    printf '[local]\n127.0.0.1\n' >> /etc/mpasswd/hosts  # the default port is the socket's
    ok "controller added: mpasswdd --new-secret, its verifier in mpasswdd.conf.d/control.conf (0600), name in mpasswd.conf.d, [local] 127.0.0.1 in /etc/mpasswd/hosts"

    shadow_hash() { getent shadow alice | cut -d: -f2; }
    verifies() { perl -e 'exit(crypt($ARGV[0], $ARGV[1]) eq $ARGV[1] ? 0 : 1)' "$1" "$(shadow_hash)"; }

    local pw1='Fleet-Change-No1!' status=0 out
    out=$(printf '%s\n' "$pw1" | mpasswd --stdin --json --limit local alice) || status=$?
    echo "$out"
    [ "$status" = 0 ] || fail "mpasswd exit $status"
    echo "$out" | grep '"result":"ok"' >/dev/null || fail "no ok result"
    echo "$out" | grep '"auth":"SCRAM-SHA-256"' >/dev/null || fail "not authenticated with SCRAM"
    verifies "$pw1" || fail "the new password does not verify against /etc/shadow"
    verifies "$old_pw" && fail "the old password still verifies"
    ok "changed through the installed units, PAM service and pam_unix, without pam_pwquality installed"
    ! grep -q "privsep\|runs as nobody" /tmp/journal /tmp/syslog ||
        { cat /tmp/journal /tmp/syslog; fail "the network child was not confined as shipped"; }
    ok "the network child ran as _mpasswdd in /usr/share/mpasswdd/empty (no privsep error)"

    echo "# install libpam-pwquality (its profile adds pam_pwquality to common-password)"
    dpkg -i "$debs"/libpam-pwquality_*.deb > /tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log; fail "pwquality"; }
    local before
    before=$(shadow_hash)
    status=0
    out=$(printf 'abc\n' | mpasswd --stdin --json alice) || status=$?
    echo "$out"
    [ "$status" = 1 ] || fail "a weak password: mpasswd exit $status, not 1"
    echo "$out" | grep '"code":554' >/dev/null || fail "a weak password was not refused with 554"
    [ "$(shadow_hash)" = "$before" ] || fail "a refused change changed /etc/shadow"
    ok "pam_pwquality (enforce_for_root) refused a weak password with 554; shadow unchanged"

    local pw2='Fleet-Change-No2?'
    printf '%s\n' "$pw2" | mpasswd --stdin -q alice || fail "the second change failed"
    verifies "$pw2" || fail "the second password does not verify"
    ok "a strong password passes the installed quality policy"

    local wrong=0
    for _ in 1 2; do
        printf 'HELO control\r\nAUTH wrong-Secret-000\r\nQUIT\r\n' |
            timeout 10 nc -q 5 127.0.0.1 "$port" > /dev/null || wrong=1
    done
    [ "$wrong" = 0 ] || fail "a session with a wrong secret did not end"
    [ "$(stat -c %a:%U /var/lib/mpasswdd)" = "700:root" ] || fail "/var/lib/mpasswdd mode"
    [ "$(stat -c %a:%U /var/lib/mpasswdd/auth-failures)" = "600:root" ] ||
        fail "auth-failures mode"
    grep -q '^127\.0\.0\.1 2 ' /var/lib/mpasswdd/auth-failures ||
        { cat /var/lib/mpasswdd/auth-failures; fail "two failed AUTHs not counted for 127.0.0.1"; }
    ok "failed AUTHs counted in /var/lib/mpasswdd/auth-failures (0600 in a 0700 folder)"

    if grep -aF -e "$(cat /etc/mpasswd/secret)" -e "$pw1" -e "$pw2" /tmp/journal /tmp/syslog; then
        fail "a secret or password reached the responder's log"
    fi
    grep -a "mpasswdd" /tmp/syslog | grep -a "alice" | tail -n 3
    grep -a "mpasswdd" /tmp/syslog | grep -aq "alice" || fail "the responder logged nothing about alice"
    ok "the responder's syslog lines name the change, never the secret or a password"

    kill "$responder" "$syslogd"
    wait "$responder" "$syslogd" 2>/dev/null || true

    pam-auth-update --enable mctp
    grep -q "pam_mctp.so" /etc/pam.d/common-password || fail "pam-auth-update --enable mctp"
    ok "pam-auth-update --enable mctp adds pam_mctp to common-password"

    echo "# dpkg -i again: the hosts file is kept as it is, without a prompt"
    local hosts_before
    hosts_before=$(sha256sum /etc/mpasswd/hosts)
    dpkg -i "$debs"/mpasswd_*.deb > /tmp/dpkg.log 2>&1 < /dev/null || { cat /tmp/dpkg.log; fail "dpkg -i again"; }
    [ "$(sha256sum /etc/mpasswd/hosts)" = "$hosts_before" ] || fail "reinstalling changed the hosts file"
    ! grep -qi "conffile" /tmp/dpkg.log || { cat /tmp/dpkg.log; fail "a conffile prompt on reinstall"; }
    ok "reinstalling mpasswd keeps the hosts file, no conffile prompt"

    echo "# dpkg --purge (prerm takes pam_mctp out of every stack)"
    dpkg --purge libpam-mctp mpasswd mpasswdd > /tmp/dpkg.log 2>&1 ||
        { cat /tmp/dpkg.log; fail "dpkg --purge"; }
    if grep -l pam_mctp /etc/pam.d/common-*; then fail "pam_mctp left in a PAM stack"; fi
    [ ! -e /etc/systemd/system/sockets.target.wants/mpasswdd.socket ] || fail "socket still enabled"
    [ ! -e /etc/mpasswd/mpasswdd.conf ] && [ ! -e /etc/pam.d/mpasswdd ] &&
        [ ! -e /etc/pam.d/mpasswdd-check ] || fail "conffiles left"
    [ ! -e /usr/sbin/mpasswdd ] && [ ! -e "$module" ] || fail "files left"
    [ ! -e /etc/mpasswd/hosts ] || fail "/etc/mpasswd/hosts left after purge"
    [ ! -e /var/lib/mpasswdd ] || fail "/var/lib/mpasswdd left after purge"
    ok "purged: no PAM stack names pam_mctp, socket disabled, conffiles gone"
    echo "install test: all checks passed"
}

# --- stage 2: private namespaces; builds the throwaway root -----------------
in_namespace() {
    local debs=$1 pwquality=$2
    mount --make-rprivate /
    local s
    s=$(mktemp -d)
    mount -t tmpfs -o mode=0700 tmpfs "$s"
    mkdir "$s/upper" "$s/work" "$s/root"
    mount -t overlay overlay -o "lowerdir=/,upperdir=$s/upper,workdir=$s/work" "$s/root"
    mount -t proc proc "$s/root/proc"
    mount --rbind /dev "$s/root/dev"
    mount -t tmpfs tmpfs "$s/root/tmp"
    mount -t tmpfs -o mode=755 tmpfs "$s/root/run"
    mkdir "$s/root/tmp/debs"
    cp "$debs"/*.deb "$pwquality" "$s/root/tmp/debs/"
    cp "$0" "$s/root/tmp/install-test.sh"
    chroot "$s/root" /bin/bash /tmp/install-test.sh --in-root
}

# --- stage 1: on the host ---------------------------------------------------

main() {
    local src=$1
    # shellcheck source=host-state.sh
    . "$(dirname "$0")/host-state.sh"
    if [ "$(id -u)" -ne 0 ]; then
        echo "SKIP: the install test needs root (mount namespaces, overlayfs, chroot)"
        exit 77
    fi
    local dist
    dist=$("$(dirname "$0")/debs.sh" "$src" "$2")
    # What a repository upload takes, and the Multi-Arch pair: mpasswd
    # foreign, so that libpam-mctp's "same" can take effect.
    ls "$dist"/mpasswd_*.changes "$dist"/mpasswd_*.buildinfo > /dev/null ||
        fail "build-deb kept no .changes or .buildinfo"
    ok "build-deb kept the .changes and the .buildinfo"
    [ "$(dpkg-deb -f "$dist"/mpasswd_*.deb Multi-Arch)" = foreign ] &&
        [ "$(dpkg-deb -f "$dist"/libpam-mctp_*.deb Multi-Arch)" = same ] ||
        fail "mpasswd is not Multi-Arch: foreign (or libpam-mctp not same)"
    ok "mpasswd is Multi-Arch: foreign, libpam-mctp Multi-Arch: same"
    local pwquality
    pwquality=$(ls "$src"/.deps/debs/libpam-pwquality_*.deb | head -n 1)
    local before
    before=$(host_state)
    unshare --mount --net --pid --fork -- "$0" --in-namespace "$dist" "$pwquality"
    [ "$(host_state)" = "$before" ] || fail "the host's /etc, units or dpkg database changed"
    ok "the host's /etc, units and dpkg database are unchanged"
}

case "${1:-}" in
    --in-root) in_root ;;
    --in-namespace) shift; in_namespace "$@" ;;
    *) main "$(cd "${1:-$(dirname "$0")/../..}" && pwd)" \
        "${2:-$(cd "${1:-$(dirname "$0")/../..}" && pwd)/build/package-debs}" ;;
esac
