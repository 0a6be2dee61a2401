# Sourced by the package and systemd suites: what of this machine a
# throwaway root must leave as it was (its users, dpkg database, PAM
# stack and units), printed so that a before and an after can be compared.
host_state() {
    { sha256sum /etc/passwd /etc/shadow /etc/group /etc/gshadow /var/lib/dpkg/status
      find /etc/pam.d /etc/systemd /etc/mpasswd /usr/share/pam-configs /lib/systemd/system \
          2> /dev/null | sort
      sha256sum /etc/pam.d/*; } 2> /dev/null
}
