"""Certificates and keys for the local control plane, made with the ``openssl`` command line tool.

Everything lives in one directory (``<state>/pki``) and is created only when missing, so a
restarted cluster keeps its CA and every kubeconfig written earlier stays valid.

    ca.crt ca.key                                  cluster CA (also signs CSRs in the controller manager)
    apiserver.crt apiserver.key                    API server serving cert (read through --cert-dir)
    sa.key sa.pub                                  service-account token signing key pair
    admin.crt admin.key                            CN=kubeagora-admin, O=system:masters
    kube-scheduler.crt kube-scheduler.key          CN=system:kube-scheduler
    kube-controller-manager.crt ...key             CN=system:kube-controller-manager
    front-proxy-client.crt ...key                  CN=front-proxy-client (aggregation layer)
    scheduler-extender.crt ...key                  the scheduler extender's serving cert (HTTPS; the scheduler
                                                   verifies it with ca.crt and presents kube-scheduler.crt)
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kubeagora.devcluster.errors import DevClusterError

CA_DAYS = 3650
LEAF_DAYS = 825

#: DNS names and IPs the API server's certificate is valid for.
APISERVER_DNS = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
APISERVER_IPS = ("127.0.0.1", "10.0.0.1")
#: Names the scheduler extender's serving certificate is valid for: on this machine, and as its in-cluster
#: Service (manifests/scheduler-extender.yaml).
EXTENDER_DNS = ("localhost", "kubeagora-scheduler-extender.kubeagora-system.svc")
EXTENDER_IPS = ("127.0.0.1",)


@dataclass(frozen=True)
class ClientIdentity:
    """A client certificate: file stem, common name (user) and organizations (groups)."""

    stem: str
    common_name: str
    organizations: tuple[str, ...] = ()


ADMIN = ClientIdentity("admin", "kubeagora-admin", ("system:masters",))
SCHEDULER = ClientIdentity("kube-scheduler", "system:kube-scheduler")
CONTROLLER_MANAGER = ClientIdentity("kube-controller-manager", "system:kube-controller-manager")
#: The API server's identity towards aggregated API servers (the aggregation layer's front proxy).
FRONT_PROXY = ClientIdentity("front-proxy-client", "front-proxy-client")
CLIENTS = (ADMIN, SCHEDULER, CONTROLLER_MANAGER, FRONT_PROXY)


@dataclass(frozen=True)
class Pki:
    """Paths of every file in a PKI directory (pure: building one touches no file)."""

    dir: Path

    @property
    def ca_cert(self) -> Path:
        return self.dir / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.dir / "ca.key"

    @property
    def apiserver_cert(self) -> Path:
        return self.dir / "apiserver.crt"

    @property
    def apiserver_key(self) -> Path:
        return self.dir / "apiserver.key"

    @property
    def extender_cert(self) -> Path:
        return self.dir / "scheduler-extender.crt"

    @property
    def extender_key(self) -> Path:
        return self.dir / "scheduler-extender.key"

    @property
    def sa_key(self) -> Path:
        return self.dir / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.dir / "sa.pub"

    def client_cert(self, who: ClientIdentity) -> Path:
        return self.dir / f"{who.stem}.crt"

    def client_key(self, who: ClientIdentity) -> Path:
        return self.dir / f"{who.stem}.key"

    def all_files(self) -> list[Path]:
        files = [self.ca_cert, self.ca_key, self.apiserver_cert, self.apiserver_key, self.sa_key, self.sa_pub,
                 self.extender_cert, self.extender_key]
        for who in CLIENTS:
            files += [self.client_cert(who), self.client_key(who)]
        return files


def subject(common_name: str, organizations: tuple[str, ...] = ()) -> str:
    """The ``-subj`` argument of openssl for a CN and zero or more O's."""
    return "".join(f"/O={o}" for o in organizations) + f"/CN={common_name}"


def apiserver_sans(dns: tuple[str, ...] = APISERVER_DNS, ips: tuple[str, ...] = APISERVER_IPS) -> str:
    """The subjectAltName value of the API server's serving certificate (and, with other names, of another)."""
    return ",".join([f"DNS:{d}" for d in dns] + [f"IP:{ip}" for ip in ips])


def _openssl(*args: str) -> None:
    exe = shutil.which("openssl")
    if exe is None:
        raise DevClusterError(
            "the 'openssl' command is needed to create the cluster's certificates; install it"
        )
    proc = subprocess.run([exe, *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise DevClusterError(f"openssl {args[0]} failed: {proc.stderr.strip()}")


def _ec_key(path: Path) -> None:
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path))
    path.chmod(0o600)


def _sign(pki: Pki, key: Path, cert: Path, subj: str, extensions: str, days: int = LEAF_DAYS) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        csr = Path(tmp) / "req.csr"
        ext = Path(tmp) / "ext.cnf"
        ext.write_text(extensions)
        _openssl("req", "-new", "-key", str(key), "-subj", subj, "-out", str(csr))
        _openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(pki.ca_cert), "-CAkey", str(pki.ca_key),
            "-set_serial", f"0x{secrets.token_hex(16)}", "-days", str(days), "-sha256",
            "-extfile", str(ext), "-out", str(cert),
        )  # fmt: skip


def ensure_pki(directory: Path) -> Pki:
    """Create whatever is missing of the CA, serving, client and service-account material."""
    pki = Pki(directory)
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    if not (pki.ca_cert.exists() and pki.ca_key.exists()):
        _ec_key(pki.ca_key)
        _openssl(
            "req", "-x509", "-new", "-key", str(pki.ca_key), "-subj", subject("kubeagora-devcluster-ca"),
            "-days", str(CA_DAYS), "-sha256",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
            "-out", str(pki.ca_cert),
        )  # fmt: skip
        # A new CA invalidates every leaf signed by an old one.
        for leaf in (pki.apiserver_cert, pki.extender_cert, *(pki.client_cert(w) for w in CLIENTS)):
            leaf.unlink(missing_ok=True)
    for cert, key, name, sans in (
            (pki.apiserver_cert, pki.apiserver_key, "kube-apiserver", apiserver_sans()),
            (pki.extender_cert, pki.extender_key, "kubeagora-scheduler-extender",
             apiserver_sans(EXTENDER_DNS, EXTENDER_IPS))):
        if not (cert.exists() and key.exists()):
            _ec_key(key)
            _sign(
                pki, key, cert, subject(name),
                "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                f"extendedKeyUsage=serverAuth\nsubjectAltName={sans}\n",
            )  # fmt: skip
    for who in CLIENTS:
        cert, key = pki.client_cert(who), pki.client_key(who)
        if not (cert.exists() and key.exists()):
            _ec_key(key)
            _sign(
                pki, key, cert, subject(who.common_name, who.organizations),
                "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=clientAuth\n",
            )  # fmt: skip
    if not (pki.sa_key.exists() and pki.sa_pub.exists()):
        _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(pki.sa_key))
        pki.sa_key.chmod(0o600)
        _openssl("pkey", "-in", str(pki.sa_key), "-pubout", "-out", str(pki.sa_pub))
    return pki
