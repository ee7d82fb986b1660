"""TLS on the node's port: one `ssl.SSLContext`, its certificate reloadable on SIGHUP.

The context is built once from a PEM certificate (chain) file and a PEM private key file.
`Certificate.reload` reads both files again: they are first loaded into a scratch context, so
a missing, damaged or mismatched file is reported and the live context keeps its old
certificate; only then is `load_cert_chain` called on the live context. OpenSSL copies the
certificate into each connection when the connection is created, so new handshakes get the new
certificate and established connections keep theirs.

Encrypted private keys are not supported: the key is loaded without a passphrase (instead of
prompting on the terminal, which a server must never do).
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass

from ressonance.protocol.errors import RessonanceError

log = logging.getLogger(__name__)


class TlsError(RessonanceError):
    """A certificate or key file that cannot be used; `setting` is `"cert"` or `"key"`."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(message)
        self.setting = setting
        self.message = message


def _load(context: ssl.SSLContext, cert_file: str, key_file: str) -> None:
    """`load_cert_chain` on `context`, with errors naming the file at fault."""
    for setting, path in (("cert", cert_file), ("key", key_file)):
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise TlsError(setting, f"cannot read {path} ({exc.strerror})") from None
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        probe.load_verify_locations(cafile=cert_file)
    except (ssl.SSLError, ValueError):
        raise TlsError("cert", f"{cert_file} holds no PEM certificate") from None

    def no_passphrase() -> bytes:
        raise TlsError("key", f"{key_file} is encrypted with a passphrase (not supported)")

    try:
        context.load_cert_chain(cert_file, key_file, password=no_passphrase)
    except TlsError:
        raise
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc):
            raise TlsError(
                "key", f"{key_file} does not match the certificate in {cert_file}"
            ) from None
        detail = f" ({exc.reason})" if exc.reason else ""
        raise TlsError("key", f"{key_file} holds no usable PEM private key{detail}") from None


def server_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """A server context with the certificate and key loaded (raises TlsError)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    _load(context, cert_file, key_file)
    return context


@dataclass(slots=True)
class Certificate:
    """The live server context and the files it is loaded from."""

    cert_file: str
    key_file: str
    context: ssl.SSLContext

    @classmethod
    def load(cls, cert_file: str, key_file: str) -> Certificate:
        return cls(cert_file, key_file, server_context(cert_file, key_file))

    def reload(self) -> bool:
        """Load the files again into the live context; on any problem keep the old certificate."""
        try:
            server_context(self.cert_file, self.key_file)  # check first: the live one stays intact
            _load(self.context, self.cert_file, self.key_file)
        except TlsError as exc:
            log.error(
                "event=tls_reload_failed file=%s error=%r keeping=previous_certificate",
                self.cert_file if exc.setting == "cert" else self.key_file,
                exc.message,
            )
            return False
        log.info("event=tls_reloaded cert=%s key=%s", self.cert_file, self.key_file)
        return True
