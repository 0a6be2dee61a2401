"""A throwaway CA and the certificates it signs, made with the openssl
command (EC P-256, fast), for the TLS tests and the demonstration."""
import os
import subprocess


def write(path, text, mode=0o600):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Pki:
    """A CA, and certificates it signs, in a folder (EC P-256, fast)."""

    def __init__(self, folder, name):
        self.dir, self.name = folder, name
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-keyout", name + "-ca.key", "-out", name + "-ca.pem", "-days", "2",
                "-subj", "/CN=%s test CA" % name, cwd=folder)
        self.ca = os.path.join(folder, name + "-ca.pem")

    def issue(self, leaf, subject, san=None, days="2", usage="serverAuth"):
        ext = os.path.join(self.dir, leaf + ".ext")
        write(ext, "basicConstraints=CA:FALSE\nextendedKeyUsage=%s\n%s"
              % (usage, "subjectAltName=%s\n" % san if san else ""), 0o644)
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", leaf + ".key", "-out", leaf + ".csr", "-subj", subject, cwd=self.dir)
        openssl("x509", "-req", "-in", leaf + ".csr", "-CA", self.name + "-ca.pem",
                "-CAkey", self.name + "-ca.key", "-CAcreateserial", "-out", leaf + ".pem",
                "-days", days, "-extfile", ext, cwd=self.dir)
        os.chmod(os.path.join(self.dir, leaf + ".key"), 0o600)
        return os.path.join(self.dir, leaf + ".pem"), os.path.join(self.dir, leaf + ".key")


def fingerprint(cert):
    out = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-fingerprint", "-sha256"],
                         capture_output=True, text=True, check=True).stdout
    return out.strip().split("=", 1)[1].replace(":", "").lower()


def subject(cert):
    out = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-subject", "-nameopt",
                          "RFC2253"], capture_output=True, text=True, check=True).stdout
    return out.strip().split("=", 1)[1]
