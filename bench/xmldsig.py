"""``python -m bench.xmldsig [--old REV] [--rounds N]``: XML-DSig sign and verify, the
implementation of revision REV against this checkout's, in one process (issue 21).

REV's ``backbone/xmldsig.py`` (default: the last one built on signxml) is loaded from git
beside the current :mod:`backbone.xmldsig`; both sign and verify the same documents, A and B
alternating within each round (the order flipped every other round), and each operation's
CPU time (``time.process_time``: every thread of the process, so the parse thread counts)
is taken per round; the median of the rounds is printed. Verification starts from a parsed
tree, as the recipient's adapter calls it (``examine`` parsed it already); signing from the
bytes, as the sending adapter calls it. The documents: the benchmark's 4 KiB document
(``bench.world.payload_edxml``, the one ``make bench`` seals) and the vendors' 360 KiB
``edoc_revocation.edxml``. Beside them, what neither implementation can avoid: the RSA-2048
private-key and public-key operations and the hardened parse (``parse_xml``).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import types
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from backbone.edxml import parse_xml
from backbone.organ import OrganCode
from backbone.pki.validation import CertificateValidator
from backbone.xmldsig import sign_edxml, verify_edxml
from bench.cpu import cpu_us
from bench.world import payload_edxml
from testkit import DevPki, make_pki

HERE = Path(__file__).resolve().parents[1]
SENDER, RECIPIENT = "000.00.00.G22", "000.00.00.H41"
VENDOR_FILE = HERE.parent / "shared" / "interop" / "edxml" / "edoc_revocation.edxml"


def last_signxml_revision() -> str:
    """The parent of the commit that replaced ``backbone/xmldsig.py`` (signxml) by the
    ``backbone/xmldsig/`` package."""
    removed = subprocess.run(
        ["git", "-C", str(HERE), "rev-list", "-1", "HEAD", "--", "backbone/xmldsig.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return f"{removed}^"


def load_old(revision: str) -> types.ModuleType:
    """``backbone/xmldsig.py`` as of ``revision``, as a module of its own."""
    source = subprocess.run(
        ["git", "-C", str(HERE), "show", f"{revision}:backbone/xmldsig.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    module = types.ModuleType("bench_old_xmldsig")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    code = compile(source, f"{revision}:backbone/xmldsig.py", "exec")
    exec(code, module.__dict__)  # noqa: S102 (this repository's own code, from its git)
    return module


def _operations(
    old: types.ModuleType, edxml: bytes, pki: DevPki, validator: CertificateValidator
) -> dict[str, Callable[[], object]]:
    issued = pki.agency(SENDER)
    sender = OrganCode.parse(SENDER)
    signed = sign_edxml(edxml, issued.key, issued.certificate)
    tree = parse_xml(signed)
    digest = b"\x00" * 32
    signature = issued.key.sign(digest, padding.PKCS1v15(), hashes.SHA256())
    public = issued.certificate.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    return {
        "sign, old": lambda: old.sign_edxml(edxml, issued.key, issued.certificate),
        "sign, new": lambda: sign_edxml(edxml, issued.key, issued.certificate),
        "verify, old": lambda: old.verify_edxml(tree, validator, sender),
        "verify, new": lambda: verify_edxml(tree, validator, sender),
        "parse_xml (either)": lambda: parse_xml(signed),
        "RSA-2048 sign (floor)": lambda: issued.key.sign(
            digest, padding.PKCS1v15(), hashes.SHA256()
        ),
        "RSA-2048 verify": lambda: public.verify(
            signature, digest, padding.PKCS1v15(), hashes.SHA256()
        ),
    }


def measure(old_revision: str, rounds: int) -> list[tuple[str, str, float]]:
    """(document, operation, median CPU µs per operation) rows."""
    old = load_old(old_revision)
    with tempfile.TemporaryDirectory(prefix="vdx-xmldsig-") as tmp:
        pki = make_pki(Path(tmp) / "pki")
        return _rounds(old, pki, rounds)


def _rounds(old: types.ModuleType, pki: DevPki, rounds: int) -> list[tuple[str, str, float]]:
    validator = pki.validator()
    documents = {
        "4 KiB (bench)": (payload_edxml(SENDER, [RECIPIENT], 1, 4096, run="XMLDSIG"), 200),
        "360 KiB (vendor)": (VENDOR_FILE.read_bytes(), 20),
    }
    rows = []
    for label, (edxml, count) in documents.items():
        operations = _operations(old, edxml, pki, validator)
        for operation in operations.values():
            operation()  # warm: caches, the validator's verdict, lazy imports
        samples: dict[str, list[float]] = {name: [] for name in operations}
        for round_ in range(rounds):
            names = list(operations) if round_ % 2 == 0 else list(reversed(operations))
            for name in names:
                samples[name].append(cpu_us(operations[name], count))
        size = f"{label}, {len(edxml):,} B"
        rows += [(size, name, statistics.median(values)) for name, values in samples.items()]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", help="revision to compare with (the last one on signxml)")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    print("| document | operation | CPU µs per operation (median) |")
    print("|---|---|---|")
    for document, operation, value in measure(args.old or last_signxml_revision(), args.rounds):
        print(f"| {document} | {operation} | {value:,.0f} |")


if __name__ == "__main__":
    main()
