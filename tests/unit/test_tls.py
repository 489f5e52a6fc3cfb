"""The one TLS context outgoing connections verify with."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from signaling.tls import trust_anchors


def test_every_connection_gets_the_same_context(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    assert trust_anchors() is trust_anchors()


def test_the_context_verifies_peers_and_their_host_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    context = trust_anchors()
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname


def test_an_unreadable_ssl_cert_file_is_an_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "missing.pem"))
    with pytest.raises(FileNotFoundError):
        trust_anchors()
