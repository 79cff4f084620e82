"""The NodeAdmin server's TLS identity: a fresh EC key and a self-signed certificate made at every
plugin start and kept in the process's memory only: never written to disk, shared with no other
node, gone with the process.

The certificate encrypts the channel. The operator does not pin it yet (it has no trusted place
to learn it from), so it guards against reading the traffic, not against an active
man-in-the-middle; the caller's token is audience-bound and short-lived for that reason."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

# The name the operator expects (grpc.ssl_target_name_override): node plugins are reached by
# pod IP, which a certificate made before the pod knows its IP could not name reliably.
SERVER_NAME = "razorfs-node-admin"
CERT_VALIDITY = datetime.timedelta(days=365)


@dataclass(frozen=True)
class ServerIdentity:
    key_pem: bytes
    cert_pem: bytes


def make_server_identity(node_id: str) -> ServerIdentity:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, SERVER_NAME),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, node_id[:64] or "node"),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + CERT_VALIDITY)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(SERVER_NAME)]), critical=False)
        # Its own root: a client that trusts exactly this certificate can verify the chain.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return ServerIdentity(key_pem, cert.public_bytes(serialization.Encoding.PEM))
