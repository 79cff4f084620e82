"""The local cluster's certificates, made with openssl: one CA, the API server's serving
certificate (bridge address, Service IP, in-cluster names), and the client certificate the API
server presents to the kubelet. Everything else authenticates with tokens.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

VALID_DAYS = "30"


@dataclass(frozen=True)
class Pki:
    folder: Path

    @property
    def ca_cert(self) -> Path:
        return self.folder / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.folder / "ca.key"

    def cert(self, name: str) -> Path:
        return self.folder / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.folder / f"{name}.key"


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _key(path: Path) -> None:
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path))
    path.chmod(0o600)


def _signed(pki: Pki, name: str, subject: str, extensions: str) -> None:
    _key(pki.key(name))
    csr = pki.folder / f"{name}.csr"
    ext = pki.folder / f"{name}.ext"
    ext.write_text(extensions)
    _openssl("req", "-new", "-key", str(pki.key(name)), "-subj", subject, "-out", str(csr))
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(pki.ca_cert), "-CAkey", str(pki.ca_key), "-CAcreateserial",
        "-days", VALID_DAYS, "-extfile", str(ext), "-out", str(pki.cert(name)),
    )
    csr.unlink()
    ext.unlink()


def create_pki(folder: Path, node_ip: str, service_ip: str) -> Pki:
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    pki = Pki(folder)
    _key(pki.ca_key)
    _openssl("req", "-x509", "-new", "-key", str(pki.ca_key), "-subj", "/CN=razorfs-local-ca", "-days", VALID_DAYS,
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-out", str(pki.ca_cert))
    names = ["kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"]
    alt = ",".join([*(f"DNS:{n}" for n in names), f"IP:{node_ip}", f"IP:{service_ip}", "IP:127.0.0.1"])
    _signed(pki, "apiserver", "/CN=kube-apiserver",
            f"subjectAltName={alt}\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n")
    client = "extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n"
    _signed(pki, "apiserver-kubelet-client", "/O=system:masters/CN=kube-apiserver-kubelet-client", client)
    return pki
