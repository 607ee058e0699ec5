"""The benchmark's issue-18 arithmetic and its document (bench/large.py): the verdicts on
one large document's figures, and the edXML it writes without holding it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from backbone.edxml import EdxmlDocument, validate
from bench.edge_floor import best_ratio, measure_edge_floor, within_phases
from bench.large import (
    MiB,
    chunk_message_bytes,
    chunk_message_total,
    large_document_targets,
    large_document_verdicts,
    transport_figures,
    write_large_edxml,
)
from bench.phases import Phases
from bench.report import _large_document

GiB = 1 << 30


def _verdicts(**changes: float | None) -> dict[str, Any]:
    figures: dict[str, float | None] = {
        "document_bytes": GiB,
        "seconds": 64.0,  # 16 MiB/s
        "ceiling_bytes_per_s": 32 * MiB,
        "router_peak_rss_mb": 150.0,
        "sender_peak_rss_mb": 2000.0,
        "recipient_peak_rss_mb": 3000.0,
    }
    figures.update(changes)
    return large_document_verdicts(**figures)  # type: ignore[arg-type]


def test_a_1_gib_document_at_half_the_ceiling_within_every_memory_bound_meets_all() -> None:
    verdicts = _verdicts()
    assert verdicts["mb_per_s"] == 16.0
    assert verdicts["ceiling_mb_per_s"] == 32.0
    assert verdicts["throughput_ratio"] == 0.5
    assert verdicts["adapter_rss_limit_mb"] == 3 * 1024 + 200
    assert verdicts["throughput_met"] is True
    assert verdicts["router_rss_met"] is True
    assert verdicts["sender_rss_met"] is True
    assert verdicts["recipient_rss_met"] is True


def test_each_bound_is_missed_just_past_it() -> None:
    assert _verdicts(seconds=64.1)["throughput_met"] is False
    assert _verdicts(router_peak_rss_mb=200.1)["router_rss_met"] is False
    assert _verdicts(router_peak_rss_mb=200.0)["router_rss_met"] is True
    assert _verdicts(sender_peak_rss_mb=3272.1)["sender_rss_met"] is False
    assert _verdicts(recipient_peak_rss_mb=3272.1)["recipient_rss_met"] is False


def test_the_router_bound_does_not_grow_with_the_document_but_the_adapters_does() -> None:
    small = _verdicts(document_bytes=64 * MiB, router_peak_rss_mb=300.0)
    assert small["router_rss_limit_mb"] == 200
    assert small["router_rss_met"] is False
    assert small["adapter_rss_limit_mb"] == 3 * 64 + 200


def test_the_report_lists_the_large_document_targets_with_those_verdicts() -> None:
    large: dict[str, Any] = {"router_peak_rss_mb": 150.0, "sender_peak_rss_mb": 2000.0}
    large |= {"recipient_peak_rss_mb": 3000.0, **_verdicts(seconds=200.0)}
    rows = {row["key"]: row for row in large_document_targets(large)}
    assert rows["large_document.throughput_ratio"]["met"] is False
    assert rows["large_document.throughput_ratio"]["measured"] == 0.16
    assert rows["large_document.router_peak_rss_mb"]["met"] is True
    assert rows["large_document.recipient_peak_rss_mb"]["target"].startswith("≤ 3,272")
    assert large_document_targets(None) == []


def test_a_document_the_path_refused_misses_throughput_and_measures_no_memory() -> None:
    verdicts = _verdicts(seconds=None)
    assert (verdicts["mb_per_s"], verdicts["throughput_ratio"]) == (None, None)
    assert verdicts["throughput_met"] is False
    assert (verdicts["router_rss_met"], verdicts["sender_rss_met"]) == (None, None)
    assert verdicts["recipient_rss_met"] is None
    large: dict[str, Any] = {"router_peak_rss_mb": 150.0, "sender_peak_rss_mb": 2000.0}
    large |= {"recipient_peak_rss_mb": 3000.0, "refused": "[edxml_too_large] …", **verdicts}
    [row] = [r for r in large_document_targets(large) if r["key"].endswith("throughput_ratio")]
    assert row["met"] is False
    assert "refused: [edxml_too_large]" in row["target"]


def test_the_written_document_is_valid_edxml_within_its_size_with_room_to_be_signed(
    tmp_path: Path,
) -> None:
    path = tmp_path / "large.xml"
    size = write_large_edxml(path, 1, 2 * MiB)
    assert size == path.stat().st_size
    assert 2 * MiB - 64 * 1024 - 8 <= size <= 2 * MiB - 64 * 1024
    message = validate(path.read_bytes())
    assert isinstance(message, EdxmlDocument)
    assert len(message.attachments[0].content) > 1.4 * MiB


def test_a_chunk_message_is_the_chunk_its_tag_and_the_prefix() -> None:
    assert chunk_message_bytes(4 * MiB) == 4 * MiB + 16 + 44


def test_the_transport_figure_is_the_chunk_bytes_from_first_published_to_last_staged() -> None:
    figures = transport_figures(
        first_chunk_published=100.0,
        last_chunk_staged=104.0,
        message_bytes=64 * MiB,
        ceiling_bytes_per_s=32 * MiB,
    )
    assert figures == {
        "transport_seconds": 4.0,
        "transport_mb_per_s": 16.0,
        "transport_ratio": 0.5,
    }
    unseen = transport_figures(
        first_chunk_published=100.0,
        last_chunk_staged=None,
        message_bytes=64 * MiB,
        ceiling_bytes_per_s=32 * MiB,
    )
    assert set(unseen.values()) == {None}


def test_the_chunk_bytes_count_every_message_the_last_one_shorter() -> None:
    overhead = chunk_message_bytes(4 * MiB) - 4 * MiB
    assert chunk_message_total(8 * MiB, 4 * MiB) == 2 * (4 * MiB + overhead)
    assert chunk_message_total(8 * MiB + 10, 4 * MiB) == 2 * (4 * MiB + overhead) + 10 + overhead


def test_the_end_to_end_ratio_keeps_its_definition_beside_the_transport_ratio() -> None:
    large: dict[str, Any] = {"document_bytes": GiB, "chunks": 256, "chunk_bytes": 4 * MiB}
    large |= {"send_seconds": 30.0, "refused": None}
    large |= {"router_peak_rss_mb": 150.0, "sender_peak_rss_mb": 2000.0}
    large |= {"recipient_peak_rss_mb": 3000.0, **_verdicts(seconds=128.0)}
    large |= {"seconds": 128.0, "transport_seconds": 16.0, "transport_mb_per_s": 64.0}
    large |= {"transport_ratio": 2.0, "sender_phases": {"sign": {"seconds": 3.5}}}
    large |= {"recipient_phases": {"verify": {"seconds": 1.25}}}
    assert large["throughput_ratio"] == 0.25  # the document's bytes over the whole path
    [line] = _large_document({"large_document": large})
    assert "(ratio 0.25)" in line
    assert "transport ratio 2" in line
    assert "sender: sign 3.5; recipient: verify 1.25" in line


def test_phases_add_up_each_labelled_call_and_keep_the_first_start_and_last_end() -> None:
    class Work:
        @staticmethod
        def step(value: int) -> int:
            return value * 2

    phases = Phases()
    phases.wrap(Work, "step", "step", when=lambda value: value > 1)
    assert [Work.step(1), Work.step(2), Work.step(3)] == [2, 4, 6]
    report = phases.report()
    assert report["step"]["calls"] == 2  # the call `when` left out is not counted
    first, last = report["step"]["first"], report["step"]["last"]
    assert first is not None
    assert last is not None
    assert first <= last


@pytest.mark.parametrize(("floor_seconds", "ratio"), [(0.0, 1.0), (2.0, 0.5), (6.0, 0.25)])
def test_the_best_ratio_is_the_bare_brokers_transport_with_only_the_edges_floor_beside_it(
    floor_seconds: float, ratio: float
) -> None:
    # 64 MiB carried at 32 MiB/s take 2 s; a floor of 2 s more halves the ratio.
    assert (
        best_ratio(
            document_bytes=64 * MiB,
            message_bytes=64 * MiB,
            ceiling_bytes_per_s=32 * MiB,
            floor_seconds=floor_seconds,
        )
        == ratio
    )


def test_the_edge_floor_times_each_whole_document_step_of_a_real_document(tmp_path: Path) -> None:
    path = tmp_path / "large.xml"
    write_large_edxml(path, 1, 2 * MiB)
    floor = measure_edge_floor(path, 256 * 1024)
    steps = [
        "sender_parse_s",
        "sender_xmldsig_digest_s",
        "sender_encrypt_s",
        "recipient_xmldsig_digest_s",
    ]
    assert all(floor[step] >= 0 for step in steps)
    assert floor["edge_floor_seconds"] == pytest.approx(sum(floor[s] for s in steps), abs=0.005)
    assert floor["sender_xmldsig_digest_s"] > 0
    assert floor["recipient_xmldsig_digest_s"] > 0


def test_the_report_says_the_edges_floor_and_the_best_ratio_it_leaves() -> None:
    large: dict[str, Any] = {"router_peak_rss_mb": 150.0, "sender_peak_rss_mb": 2000.0}
    large |= {"recipient_peak_rss_mb": 3000.0, **_verdicts(seconds=200.0)}
    large |= {"document_bytes": GiB, "chunks": 256, "chunk_bytes": 4 * MiB, "seconds": 200.0}
    large |= {"send_seconds": 120.0, "refused": None, "best_ratio": 0.31}
    large["edge_floor"] = {
        "sender_parse_s": 0.8,
        "sender_xmldsig_digest_s": 4.0,
        "sender_encrypt_s": 0.7,
        "recipient_xmldsig_digest_s": 4.0,
        "edge_floor_seconds": 9.5,
    }
    [line] = _large_document({"large_document": large})
    assert "**9.5 s**" in line
    assert "at most **0.31**" in line
    rows = {row["key"]: row for row in large_document_targets(large)}
    assert "at most 0.31 here" in rows["large_document.throughput_ratio"]["target"]


def test_no_floor_step_is_above_the_products_own_phase_doing_it_in_the_same_run() -> None:
    floor = {
        "sender_parse_s": 0.9,
        "sender_xmldsig_digest_s": 5.5,
        "sender_encrypt_s": 0.8,
        "recipient_xmldsig_digest_s": 4.6,
        "edge_floor_seconds": 11.8,
    }
    sender = {"parse": {"seconds": 3.2}, "sign": {"seconds": 6.0}}
    recipient = {"verify": {"seconds": 3.7}}
    bounded = within_phases(floor, sender, recipient)
    assert bounded["recipient_xmldsig_digest_s"] == 3.7  # the product verified faster
    assert (bounded["sender_parse_s"], bounded["sender_xmldsig_digest_s"]) == (0.9, 5.5)
    assert bounded["edge_floor_seconds"] == pytest.approx(0.9 + 5.5 + 0.8 + 3.7)
    assert within_phases(floor, {}, {}) == floor  # the document did not get through
