"""AMQPS: reaching the broker over TLS with its certificate verified.

The router and adapters take the same three settings beside ``amqp_url``:
``amqp_ca_file`` (PEM of the CA that signed the broker's certificate), and optionally
``amqp_cert_file`` / ``amqp_key_file`` (a client certificate, for brokers that ask for one).
With an ``amqps://`` URL the connection verifies the broker's certificate against that CA
(or, without ``amqp_ca_file``, against the system's CAs) and checks that it names the host
in the URL; verification cannot be turned off. :func:`connection_url` folds the files into
the URL as the query parameters aiormq builds its ``ssl.SSLContext`` from
(``ssl.create_default_context``: TLS 1.2 or later, ``CERT_REQUIRED``, host name checked).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["check_tls_settings", "connection_problem", "connection_url"]

_QUERY_KEYS = ("cafile", "certfile", "keyfile")  # aiormq's names, in the settings' order


def check_tls_settings(
    url: str, ca_file: Path | None, cert_file: Path | None, key_file: Path | None
) -> None:
    """Raise ValueError (a configuration error, named precisely) when the TLS settings do
    not fit the URL or each other, or a file cannot be read."""
    parts = urlsplit(url)
    query = {key for key, _ in parse_qsl(parts.query)}
    if "no_verify_ssl" in query:
        raise ValueError(
            "amqp_url carries no_verify_ssl: verification of the broker's certificate cannot "
            "be turned off; set amqp_ca_file to the CA that signed it"
        )
    files = {"amqp_ca_file": ca_file, "amqp_cert_file": cert_file, "amqp_key_file": key_file}
    twice = [
        f"{name} and the URL's {key}"
        for (name, path), key in zip(files.items(), _QUERY_KEYS, strict=True)
        if path is not None and key in query
    ]
    if twice:
        raise ValueError(f"amqp_url names a TLS file too: set either {'; '.join(twice)}")
    given = [name for name, path in files.items() if path is not None]
    if given and parts.scheme != "amqps":
        raise ValueError(
            f"{' and '.join(given)} set, but amqp_url is {parts.scheme}://, which is not "
            "encrypted: use amqps:// (RabbitMQ's TLS listener, port 5671 by default)"
        )
    if (cert_file is None) != (key_file is None):
        raise ValueError("amqp_cert_file and amqp_key_file go together: set both or neither")
    for name, path in files.items():
        if path is not None and not path.is_file():
            raise ValueError(f"{name} {path} is not a readable file")


def connection_url(
    url: str,
    ca_file: Path | None = None,
    cert_file: Path | None = None,
    key_file: Path | None = None,
) -> str:
    """``url`` with the TLS files as aiormq's query parameters (unchanged for amqp://).
    The result carries the password: never log it."""
    check_tls_settings(url, ca_file, cert_file, key_file)
    parts = urlsplit(url)
    if parts.scheme != "amqps":
        return url
    query = parse_qsl(parts.query)
    for key, path in zip(_QUERY_KEYS, (ca_file, cert_file, key_file), strict=True):
        if path is not None:
            query.append((key, str(path.resolve())))
    return urlunsplit(parts._replace(query=urlencode(query)))


def connection_problem(error: BaseException) -> str:
    """Why a connection attempt failed, in words an operator can act on: a TLS
    verification failure says so (aiormq wraps it in a connection error)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return (
                "TLS verification of the broker's certificate failed "
                f"({current.verify_message or current.reason}): check amqp_ca_file and the "
                "host name in amqp_url against the broker's certificate"
            )
        if isinstance(current, ssl.SSLError):
            return f"the TLS handshake with the broker failed ({current.reason or current})"
        current = current.__cause__ or current.__context__
    if isinstance(error, TimeoutError):
        return (
            "no answer within connect_timeout: the broker did not accept the connection or "
            "never answered the AMQP handshake (a stopped or wedged node, or a port that is "
            "not AMQP's): check the host and port in amqp_url and the broker's state"
        )
    # Only plain words from the error, never anything URL-shaped (it may hold a password).
    text = " ".join(arg for arg in error.args if isinstance(arg, str) and "://" not in arg)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return f"TLS verification of the broker's certificate failed ({text})"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
