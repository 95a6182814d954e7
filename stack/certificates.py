"""Throwaway TLS material for the local secured services that the security tests start."""

from __future__ import annotations

import subprocess
from pathlib import Path


def self_signed_certificates(folder: Path) -> None:
    """A throwaway CA (ca.crt), and a certificate for 127.0.0.1 and localhost that it signed
    (node.crt, node.key; node.pem holds both, for Kafka's PEM key store)."""
    folder.mkdir(parents=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            "/CN=clickstream test CA", "-keyout", "ca.key", "-out", "ca.crt")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout",
            "node.key", "-out", "node.csr")
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "node.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "node.crt")
    (folder / "node.pem").write_text((folder / "node.key").read_text() + (folder / "node.crt").read_text())
