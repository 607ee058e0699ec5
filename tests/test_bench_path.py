"""The benchmark's issue-21 arithmetic: the path's CPU by party against its floor, and the
replicas' summary (bench/path.py, bench/__main__.py); the bare path that measures the
broker's floor at the latency loads (bench/bare_path.py), against the real broker."""

from __future__ import annotations

import uuid

import aio_pika
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from bench.bare_path import measure_bare_path
from bench.cpu import local_broker_pid
from bench.path import cpu_budget, measure_rsa_floor, path_budget, replicas_summary
from bench.report import _path

RSA = {"sign_pkcs1_us": 300.0, "sign_pss_us": 310.0, "unwrap_oaep_us": 290.0}
LATENCY = {"sender_us": 100, "router_us": 700, "broker_us": 500, "recipient_us": 900}


def test_path_total_sums_every_party_and_floor_counts_two_signatures_one_unwrap_two_hops() -> None:
    path = path_budget(seal_us=800, latency_cpu=LATENCY, rsa_us=RSA, ceiling_broker_us=250)
    assert path["total_us"] == 800 + 100 + 700 + 500 + 900
    assert path["floor_us"] == 300 + 310 + 290 + 2 * 250
    assert path["total_over_floor"] == round(3000 / 1400, 2)
    assert path["within_20pct_of_floor"] is False


def test_path_within_20pct_when_total_is_at_most_1_2_floors() -> None:
    cheap = {"sender_us": 0, "router_us": 0, "broker_us": 500, "recipient_us": 290}
    path = path_budget(seal_us=890, latency_cpu=cheap, rsa_us=RSA, ceiling_broker_us=250)
    assert path["total_us"] == 1680
    assert path["floor_us"] == 1400
    assert path["within_20pct_of_floor"] is True


def test_path_unmeasured_broker_leaves_total_floor_and_verdict_unknown() -> None:
    path = path_budget(
        seal_us=800, latency_cpu={**LATENCY, "broker_us": None}, rsa_us=RSA, ceiling_broker_us=None
    )
    assert path["total_us"] is None
    assert path["floor_us"] is None
    assert path["within_20pct_of_floor"] is None


def test_rsa_floor_times_each_private_key_operation() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    floor = measure_rsa_floor(key, 3)
    assert set(floor) == {"sign_pkcs1_us", "sign_pss_us", "unwrap_oaep_us"}
    assert all(value > 0 for value in floor.values())


def test_cpu_ratio_is_forwarder_plus_broker_over_router_plus_broker() -> None:
    ceiling = {"forwarder_cpu_us_per_message": 325, "broker_cpu_us_per_message": 243}
    run = {"cpu_us_per_envelope": 723, "broker_cpu_us_per_envelope": 250}
    assert cpu_budget(ceiling, run)["cpu_ratio"] == round(568 / 973, 3)


def test_replicas_summary_sets_two_postgresql_replicas_beside_one() -> None:
    def run(replicas: int, per_s: float, cpu: int) -> dict[str, object]:
        return {
            "store": "postgresql",
            "payload_bytes": 4096,
            "recipients": 1,
            "replicas": replicas,
            "per_s": per_s,
            "cpu_us_per_envelope": cpu,
            "broker_cpu_us_per_envelope": 400,
        }

    summary = replicas_summary([run(1, 800.0, 1200), run(2, 1200.0, 1300)])
    assert summary is not None
    assert summary["rate_ratio"] == 1.5
    assert (summary["one_cpu_us_per_envelope"], summary["two_cpu_us_per_envelope"]) == (1200, 1300)
    assert replicas_summary([run(1, 800.0, 1200)]) is None


def test_the_broker_floor_is_the_bare_paths_at_the_same_loads_when_it_was_measured() -> None:
    bare = {"broker_us": 1100, "clients_us": 1300}
    path = path_budget(
        seal_us=800, latency_cpu=LATENCY, rsa_us=RSA, ceiling_broker_us=250, bare_path=bare
    )
    assert path["floor_us"] == 300 + 310 + 290 + 1100
    assert (path["floor_broker_us"], path["floor_broker_basis"]) == (1100, "bare_path")
    assert path["ceiling_broker_hops_us"] == 2 * 250  # still reported beside it
    assert path["bare_clients_us"] == 1300


def test_without_the_bare_path_the_ceiling_stands_in_for_the_broker_floor() -> None:
    for bare in (None, {"broker_us": None, "clients_us": 900}):
        path = path_budget(
            seal_us=800, latency_cpu=LATENCY, rsa_us=RSA, ceiling_broker_us=250, bare_path=bare
        )
        assert (path["floor_broker_us"], path["floor_broker_basis"]) == (500, "ceiling")
        assert path["floor_us"] == 300 + 310 + 290 + 500


async def test_the_bare_path_carries_every_load_through_two_quorum_queues_and_cleans_up(
    amqp_url: str,
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    bare = await measure_bare_path(
        amqp_url, prefix, loads=(40, 80), seconds=0.25, size=2048, broker_pid=local_broker_pid()
    )
    assert bare["documents"] == 10 + 20
    assert (bare["hops"], bare["message_bytes"], bare["loads"]) == (2, 2048, [40, 80])
    assert bare["clients"] == "aiormq"
    parts = [bare[f"{client}_us"] for client in ("publisher", "forwarder", "consumer")]
    assert all(isinstance(part, int) and part > 0 for part in parts), bare
    assert bare["clients_us"] == sum(parts)  # type: ignore[arg-type]
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        for hop in ("hop1", "hop2"):  # both queues deleted
            with pytest.raises(aio_pika.exceptions.ChannelClosed):
                await channel.declare_queue(f"{prefix}.bench.bare.{hop}", passive=True)
            channel = await connection.channel()
    finally:
        await connection.close()


def test_the_report_says_which_broker_floor_the_path_was_held_to() -> None:
    bare = {"loads": [100, 200], "seconds_per_load": 5.0, "message_bytes": 9000}
    bare |= {"documents": 1500, "broker_us": 1100, "clients": "aiormq", "clients_us": 1300}
    bare |= {"publisher_us": 300, "forwarder_us": 600, "consumer_us": 400}
    path = path_budget(
        seal_us=800, latency_cpu=LATENCY, rsa_us=RSA, ceiling_broker_us=250, bare_path=bare
    )
    text = "\n".join(_path({"path_cpu": path, "bare_path": bare}))
    assert "bare path at the same loads (100, 200/s" in text
    assert "**1100 µs** for the 2 hops" in text
    assert "at saturation would say 500 µs" in text
    assert "1300 µs per document" in text
    assert "publisher 300, forwarder 600, consumer 400 µs" in text
    floor = 300 + 310 + 290 + 1100
    assert path["floor_and_clients_us"] == floor + 1300
    assert f"no less than **{floor + 1300} µs**, {round((floor + 1300) / floor, 2)}×" in text

    path = path_budget(seal_us=800, latency_cpu=LATENCY, rsa_us=RSA, ceiling_broker_us=250)
    text = "\n".join(_path({"path_cpu": path}))
    assert "at saturation × 2 hops (500 µs)." in text
    assert "bare path" not in text
