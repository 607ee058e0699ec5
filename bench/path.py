"""The whole path's CPU per document by party, seal included, against its floor (issue 21).

The floor is the work no implementation can avoid: the RSA-2048 private-key operations —
two signatures at the sender (the edXML's XML-DSig, RSASSA-PKCS1-v1_5 SHA-256, and the
envelope's, RSASSA-PSS SHA-256), one RSAES-OAEP unwrap per recipient — timed here with
`cryptography` directly, and the broker's own CPU per document for the path's two hops at
the loads the path was measured at (bench/bare_path.py). Without that measure, the broker's
CPU per message in the ceiling run (one enqueue and one dequeue, at saturation) once per
hop stands in for it: a lower figure, since at saturation the broker shares each log write
and wake-up among many messages.
"""

from __future__ import annotations

import os
import statistics

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from bench.cpu import cpu_us

ROUNDS = 5
# sender → inbound queue → router, router → inbox → recipient: two enqueues and two dequeues
BROKER_HOPS = 2
WITHIN = 1.2  # the issue: get within 20 % of the floor
TARGET_US = 3000


def measure_rsa_floor(key: rsa.RSAPrivateKey, count: int) -> dict[str, float]:
    """CPU µs per private-key operation, median of :data:`ROUNDS` rounds of ``count``."""
    digest = os.urandom(32)
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    wrapped = key.public_key().encrypt(os.urandom(32), oaep)
    operations = {
        "sign_pkcs1_us": lambda: key.sign(digest, padding.PKCS1v15(), hashes.SHA256()),
        "sign_pss_us": lambda: key.sign(digest, pss, hashes.SHA256()),
        "unwrap_oaep_us": lambda: key.decrypt(wrapped, oaep),
    }
    return {
        name: round(statistics.median(cpu_us(operation, count) for _ in range(ROUNDS)))
        for name, operation in operations.items()
    }


def path_budget(
    *,
    seal_us: object,
    latency_cpu: dict[str, object],
    rsa_us: dict[str, float],
    ceiling_broker_us: object,
    bare_path: dict[str, object] | None = None,
    recipients: int = 1,
) -> dict[str, object]:
    """CPU µs per document by party (seal at the sender, the sender's publish, router,
    broker, the recipient's open), the total, the floor and their ratio. The broker's floor
    is ``bare_path``'s broker CPU per document when it was measured, else
    ``ceiling_broker_us`` per hop."""
    parties = {
        "seal_us": seal_us,
        "publish_us": latency_cpu["sender_us"],
        "router_us": latency_cpu["router_us"],
        "broker_us": latency_cpu["broker_us"],
        "open_us": latency_cpu["recipient_us"],
    }
    known = None not in parties.values()
    total = round(sum(float(str(v)) for v in parties.values())) if known else None
    floor_rsa = rsa_us["sign_pkcs1_us"] + rsa_us["sign_pss_us"]
    floor_rsa += recipients * rsa_us["unwrap_oaep_us"]
    at_saturation = (
        None if ceiling_broker_us is None else BROKER_HOPS * float(str(ceiling_broker_us))
    )
    at_loads = None if bare_path is None else bare_path.get("broker_us")
    floor_broker = at_saturation if at_loads is None else float(str(at_loads))
    floor = None if floor_broker is None else round(floor_rsa + floor_broker)
    ratio = round(total / floor, 2) if total and floor else None
    clients = None if bare_path is None else bare_path.get("clients_us")
    # No path built on these clients costs less than the floor plus what they cost bare.
    least = None if floor is None or clients is None else floor + int(str(clients))
    return {
        **parties,
        "total_us": total,
        "target_us": TARGET_US,
        "rsa": rsa_us,
        "floor_rsa_us": round(floor_rsa),
        "broker_hops": BROKER_HOPS,
        "floor_broker_us": None if floor_broker is None else round(floor_broker),
        "floor_broker_basis": "ceiling" if at_loads is None else "bare_path",
        "ceiling_broker_hops_us": None if at_saturation is None else round(at_saturation),
        "bare_clients_us": clients,
        "floor_us": floor,
        "floor_and_clients_us": least,
        "floor_and_clients_over_floor": round(least / floor, 2) if least and floor else None,
        "total_over_floor": ratio,
        "within_20pct_of_floor": None if ratio is None else ratio <= WITHIN,
    }


def cpu_budget(ceiling: dict[str, object], run: dict[str, object]) -> dict[str, object]:
    """CPU per message of the ceiling forwarder and of the router (SQLite, 4 KiB, 1
    recipient), each with the broker's share, and the rate the machine's cores could carry
    at that cost if nothing else ran: what bounds ``router_ratio`` on a small machine."""
    cpus = os.cpu_count() or 1

    def bound(*parts: object) -> float | None:
        if any(part is None for part in parts):
            return None
        total = sum(float(str(part)) for part in parts)
        return round(cpus * 1e6 / total, 1) if total else None

    forwarder, broker_c = (
        ceiling["forwarder_cpu_us_per_message"],
        ceiling["broker_cpu_us_per_message"],
    )
    router, broker_r = run["cpu_us_per_envelope"], run["broker_cpu_us_per_envelope"]
    return {
        "cpus": cpus,
        "ceiling_forwarder_us": forwarder,
        "ceiling_broker_us": broker_c,
        "ceiling_cpu_bound_per_s": bound(forwarder, broker_c),
        "router_us": router,
        "router_broker_us": broker_r,
        "router_cpu_bound_per_s": bound(router, broker_r),
        # issue 21: (forwarder + broker) ÷ (router + broker) CPU per message
        "cpu_ratio": _ratio((forwarder, broker_c), (router, broker_r)),
    }


def _ratio(numerator: tuple[object, ...], denominator: tuple[object, ...]) -> float | None:
    """sum(numerator) ÷ sum(denominator), None when a part was not measured."""
    if None in numerator or None in denominator:
        return None
    below = sum(float(str(part)) for part in denominator)
    return round(sum(float(str(part)) for part in numerator) / below, 3) if below else None


def replicas_summary(runs: list[dict[str, object]]) -> dict[str, object] | None:
    """One router replica on PostgreSQL beside two sharing its inbound queue (4 KiB, 1
    recipient): each one's rate and CPU per envelope, and what the second one adds."""
    found = {
        r["replicas"]: r
        for r in runs
        if (r["store"], r["payload_bytes"], r["recipients"]) == ("postgresql", 4096, 1)
    }
    if 1 not in found or 2 not in found:
        return None
    one, two = found[1], found[2]
    return {
        "one_per_s": one["per_s"],
        "two_per_s": two["per_s"],
        "rate_ratio": _ratio((two["per_s"],), (one["per_s"],)),
        "one_cpu_us_per_envelope": one["cpu_us_per_envelope"],
        "two_cpu_us_per_envelope": two["cpu_us_per_envelope"],
        "one_broker_cpu_us_per_envelope": one["broker_cpu_us_per_envelope"],
        "two_broker_cpu_us_per_envelope": two["broker_cpu_us_per_envelope"],
    }
