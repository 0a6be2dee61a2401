#!/usr/bin/env python3
"""The second half of the README demonstration: mpasswd changes alice's
password on several socket-activated responders on 127.0.0.1 at once (each
its own "host", with pam_matrix as its password store), one of which is
down, and one of which refuses alice by policy."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from fleet import Fleet, fleet_env  # noqa: E402

NEW = "Fleet-N3w-Pw!"


def main():
    mpasswd = os.environ["MPASSWD"]
    fleet = Fleet(fleet_env(), 6, "Demo-Fleet-Secret-1", {4: "deny-alice", 5: "closed"})
    try:
        with open(fleet.config) as f:
            config = f.read()
        print("== the controller's configuration (%s)" % fleet.config)
        print(config.replace(fleet.dir, "$DEMO"), end="")
        print("== the hosts file: six targets on 127.0.0.1; the fifth refuses alice by "
              "policy, nothing listens on the sixth")
        print("== $ printf '%%s\\n' '%s' | mpasswd -c $DEMO/mpasswd.conf --stdin alice" % NEW)
        r = subprocess.run([mpasswd, "-c", fleet.config, "--stdin", "alice"],
                           input=NEW + "\n", capture_output=True, text=True, timeout=120)
        print(r.stdout + r.stderr, end="")
        print("== exit status %d (1: some target failed)" % r.returncode)
        print("== alice's password in each target's password store")
        for i, target in enumerate(fleet.targets()):
            pw = fleet.password_of(i, "alice") if i != 5 else None
            state = ("changed" if pw == NEW else "unchanged") if pw else "(down)"
            print("  %-16s %s" % (target, state))
        print("== $ mpasswd --verify --json -H %s alice" % fleet.targets([0])[0])
        r2 = subprocess.run([mpasswd, "-c", fleet.config, "--verify", "--json", "-H",
                             fleet.targets([0])[0], "alice"], capture_output=True, text=True)
        print(r2.stdout, end="")
        good = all(fleet.password_of(i, "alice") == NEW for i in range(4))
        ok = r.returncode == 1 and good and fleet.password_of(4, "alice") != NEW
        print("ok: four targets changed at once, the refusal and the dead one reported"
              if ok else "FAILED")
        return 0 if ok and r2.returncode == 0 else 1
    finally:
        fleet.stop()
        fleet.remove()


if __name__ == "__main__":
    sys.exit(main())
