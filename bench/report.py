"""results.json, report.md and latency.png from one run's results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.large import large_document_targets


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with its measurement and whether it is met (None: not measurable)."""
    at_500 = next((e for e in results["latency"] if e["offered_per_s"] == 500), None)
    p99_500 = at_500["p99_ms"] if at_500 else None
    complete_500 = bool(at_500) and at_500["lost_or_late"] == 0
    ratio = results["router_ratio"]
    cpu_ratio = (results.get("cpu_budget") or {}).get("cpu_ratio")
    path = results.get("path_cpu") or {}
    total, over_floor = path.get("total_us"), path.get("total_over_floor")
    at_capacity = results.get("latency_at_capacity")
    p99_capacity = at_capacity["p99_ms"] if at_capacity else None
    return [
        {
            "key": "router_ratio",
            "target": "≥ 0.8",
            "measured": ratio,
            "met": None if ratio is None else ratio >= 0.8,
        },
        {
            "key": "cpu_ratio",
            "target": "≥ 0.8",
            "measured": cpu_ratio,
            "met": None if cpu_ratio is None else cpu_ratio >= 0.8,
        },
        {
            "key": "path_cpu.total_us",
            "target": f"≤ {path.get('target_us', 3000)} µs (floor {_fmt(path.get('floor_us'))} µs)",
            "measured": total,
            "met": None if total is None else total <= path["target_us"],
        },
        {
            "key": "path_cpu.total_over_floor",
            "target": "≤ 1.2 (within 20 % of the floor)"
            + (
                f"; the floor plus bare clients alone: {_fmt(least)}"
                if (least := path.get("floor_and_clients_over_floor")) is not None
                else ""
            ),
            "measured": over_floor,
            "met": path.get("within_20pct_of_floor"),
        },
        {
            "key": "p99_ms at 60 % of capacity"
            + (f" ({at_capacity['offered_per_s']}/s)" if at_capacity else ""),
            "target": "≤ 50 ms",
            "measured": p99_capacity,
            "met": None
            if p99_capacity is None
            else (p99_capacity <= 50 and at_capacity["lost_or_late"] == 0),
        },
        {
            "key": "p99_ms at 500/s",
            "target": "≤ 50 ms",
            "measured": p99_500,
            "met": None if p99_500 is None else (p99_500 <= 50 and complete_500),
        },
        {
            "key": "router_peak_rss_mb",
            "target": "≤ 200 MB",
            "measured": results["router_peak_rss_mb"],
            "met": results["router_peak_rss_mb"] <= 200,
        },
        {
            "key": "directory_load_seconds",
            "target": "< 1 s",
            "measured": results["directory_load_seconds"],
            "met": results["directory_load_seconds"] < 1,
        },
        *large_document_targets(results.get("large_document")),
    ]


def plot(results: dict[str, Any], path: Path) -> None:
    # Imported here: matplotlib is in the bench extra, and the report's text is also read
    # where only the test extra is installed (CI's `make test`).
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [e for e in results["latency"] if e["p50_ms"] is not None]
    figure, axes = plt.subplots(figsize=(7, 4.5))
    loads = [e["offered_per_s"] for e in rows]
    for key, marker in (("p50_ms", "o"), ("p95_ms", "s"), ("p99_ms", "^")):
        axes.plot(loads, [e[key] for e in rows], marker=marker, label=key.replace("_ms", ""))
    axes.axhline(50, color="grey", linestyle="--", linewidth=1, label="target p99 (50 ms)")
    at_capacity = results.get("latency_at_capacity")
    if at_capacity and at_capacity["p99_ms"] is not None:
        axes.plot(
            [at_capacity["offered_per_s"]],
            [at_capacity["p99_ms"]],
            marker="*",
            markersize=14,
            linestyle="none",
            color="black",
            label=f"p99 at {at_capacity['fraction']:.0%} of capacity",
        )
    axes.set_xlabel("offered load (documents per second)")
    axes.set_ylabel("end-to-end latency (ms)")
    axes.set_yscale("log")
    axes.set_xticks(loads)
    axes.set_title(
        f"adapter publish → recipient received(), router on SQLite ({results['mode']} run)"
    )
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if value < 10 else f"{value:,.1f}"
    return str(value)


def markdown(results: dict[str, Any]) -> str:
    ceiling = results["ceiling"]
    lines = [
        "# Benchmark: the router against the broker's own ceiling",
        "",
        f"Run `{results['mode']}` at {results['generated_at']} on {results['machine']['cpus']} "
        f"CPUs, RabbitMQ {results['machine']['broker']}, Python "
        f"{results['machine']['python']}; {results['wall_seconds']} s in all. Produced by "
        f"`python -m bench{' --quick' if results['mode'] == 'quick' else ''}`; every number "
        "below is from this one run (keys: bench/README.md).",
        "",
        "## Targets",
        "",
        "| what | target | measured | met |",
        "|---|---|---|---|",
    ]
    for t in targets(results):
        met = {True: "**yes**", False: "**no**", None: "not measured"}[t["met"]]
        lines.append(f"| `{t['key']}` | {t['target']} | {_fmt(t['measured'])} | {met} |")
    lines += [
        "",
        "## Throughput",
        "",
        f"- **Ceiling** (bare consume → republish forwarder, quorum queues, persistent, "
        f"confirms, ack after confirm, prefetch 256, {ceiling['message_bytes']} B messages = "
        f"the sealed 4 KiB envelope): **{_fmt(results['ceiling_per_s'])}/s** "
        f"({ceiling['messages']} messages).",
        f"- **Router, SQLite store, 4 KiB, 1 recipient: {_fmt(results['router_per_s'])}/s** → "
        f"`router_ratio` = {_fmt(results['router_ratio'])}.",
        f"- Router with the `memory://` store, same envelopes: "
        f"{_fmt(results['router_memory_per_s'])}/s (the difference is the store's cost).",
        "",
        "| store | replicas | payload | recipients | envelope bytes | envelopes | start-up s "
        "| per s | router CPU µs/envelope | broker CPU µs/envelope | router peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["router_runs"]:
        lines.append(
            f"| {r['store']} | {r.get('replicas', 1)} | {r['payload_bytes'] // 1024} KiB | "
            f"{r['recipients']} | "
            f"{r['envelope_bytes']} | {r['envelopes']} | {_fmt(r['startup_seconds'])} | "
            f"{_fmt(r['per_s'])} | {_fmt(r['cpu_us_per_envelope'])} | "
            f"{_fmt(r['broker_cpu_us_per_envelope'])} | {_fmt(r['peak_rss_mb'])} |"
        )
    adapter = results["adapter"]
    lines += [
        "",
        "Each router run: the inbound queue pre-filled with signed and encrypted envelopes "
        "(published by the sender's own broker user, `user_id` checked by the broker), then a "
        "router started in a subprocess with full validation. The rate is the steady one, "
        "from the first envelope seen in the inboxes to the last (polled every 20 ms), like "
        "the ceiling's, which counts from its first consume; the router's start-up (connect, "
        "topology declare) is shown apart. CPU per envelope: the router process's (start-up "
        "included) and the broker node's over the run.",
        "",
        *_replicas(results),
        *_cpu_budget(results),
        f"- **Adapter send** (4 KiB document): seal (validate, XML-DSig sign, encrypt) "
        f"{_fmt(adapter['seal_per_s'])}/s on one core; publish with confirms, many in flight, "
        f"{_fmt(adapter['publish_per_s'])}/s; seal then publish: "
        f"**{_fmt(results['adapter_send_per_s'])}/s**.",
        *_gateway(results),
        *_large_document(results),
        "",
        "## End-to-end latency",
        "",
        "Adapter `publish` → router (SQLite) → recipient adapter `received()` yields it; real "
        "`AdapterClient` at both ends (status 01 off: `auto_arrival=False`), envelopes sealed "
        "beforehand, published on a fixed schedule. Latency counts from each envelope's "
        "*scheduled* time, so a late publish is not forgiven.",
        "",
        "| offered /s | achieved publish /s | sent | received | p50 ms | p95 ms | p99 ms "
        "| max ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in results["latency"]:
        lines.append(
            f"| {e['offered_per_s']} | {_fmt(e['achieved_publish_per_s'])} | {e['sent']} | "
            f"{e['received']} | {_fmt(e['p50_ms'])} | {_fmt(e['p95_ms'])} | "
            f"{_fmt(e['p99_ms'])} | {_fmt(e['max_ms'])} |"
        )
    best = results["max_load_p99_under_100ms"]
    lines += ["", *_at_capacity(results), *_latency_budget(results), *_path(results)]
    lines += [
        f"Highest offered load with p99 under 100 ms (all received): "
        f"**{_fmt(best) + '/s' if best else 'none of those measured'}**.",
        "",
        "![latency percentiles against offered load](latency.png)",
        "",
        "## Memory and directory",
        "",
        f"- Router peak RSS: **{_fmt(results['router_peak_rss_mb'])} MB** "
        f"({results['router_rss_source']}).",
        f"- Synthetic country directory ({results['directory']['agencies']:,} agencies, "
        f"{results['directory']['hubs']} hubs, {results['directory']['file_bytes']:,} B of "
        f"JSON, version 2 with {results['directory'].get('paired_codes', 0):,} paired codes): "
        f"`load_directory` took **{_fmt(results['directory_load_seconds'])} s** "
        f"(the same country as version 1: "
        f"{_fmt(results['directory'].get('version_1_load_seconds'))} s). A lookup by code "
        f"(`get`) {_fmt(results['directory'].get('get_ns'))} ns, at an instant (`lookup`) "
        f"{_fmt(results['directory'].get('resolve_ns'))} ns, by a paired code "
        f"{_fmt(results['directory'].get('resolve_paired_ns'))} ns.",
        "",
        *_tracking(results),
        *_reform(results),
        "## Reading it",
        "",
        _reading(results),
        "",
        *_optimisations(),
    ]
    return "\n".join(lines)


def _cpu_budget(results: dict[str, Any]) -> list[str]:
    budget = results.get("cpu_budget")
    if not budget or budget["router_broker_us"] is None:
        return ["(The broker's CPU was not measured: it is not a local node.)", ""]
    return [
        f"**Where the CPU goes** ({budget['cpus']} cores shared by the broker and the "
        "process under test):",
        "",
        "| per message | client process µs | broker µs | rate the cores could carry |",
        "|---|---|---|---|",
        f"| ceiling forwarder | {_fmt(budget['ceiling_forwarder_us'])} | "
        f"{_fmt(budget['ceiling_broker_us'])} | {_fmt(budget['ceiling_cpu_bound_per_s'])}/s |",
        f"| router, SQLite, 4 KiB ×1 | {_fmt(budget['router_us'])} | "
        f"{_fmt(budget['router_broker_us'])} | {_fmt(budget['router_cpu_bound_per_s'])}/s |",
        "",
        f"`cpu_ratio` = (forwarder + broker) ÷ (router + broker) CPU per message = "
        f"**{_fmt(budget.get('cpu_ratio'))}** (target ≥ 0.8).",
        "",
    ]


def _replicas(results: dict[str, Any]) -> list[str]:
    replicas = results.get("router_replicas")
    if not replicas:
        return []
    return [
        "**Router replicas on PostgreSQL** (4 KiB, 1 recipient, one schema, the replicas "
        "sharing one inbound queue, started together):",
        "",
        "| replicas | per s | router CPU µs/envelope (all replicas) | broker CPU µs/envelope |",
        "|---|---|---|---|",
        f"| 1 | {_fmt(replicas['one_per_s'])} | {_fmt(replicas['one_cpu_us_per_envelope'])} | "
        f"{_fmt(replicas['one_broker_cpu_us_per_envelope'])} |",
        f"| 2 | {_fmt(replicas['two_per_s'])} | {_fmt(replicas['two_cpu_us_per_envelope'])} | "
        f"{_fmt(replicas['two_broker_cpu_us_per_envelope'])} |",
        "",
        f"Two replicas carry {_fmt(replicas['rate_ratio'])}× one replica's rate on these "
        f"{results['machine']['cpus']} cores (shared with the broker and PostgreSQL).",
        "",
    ]


def _at_capacity(results: dict[str, Any]) -> list[str]:
    entry = results.get("latency_at_capacity")
    if not entry:
        return ["(No capacity point: the broker's CPU was not measured.)", ""]
    return [
        f"**At {entry['fraction']:.0%} of the path's capacity**: the capacity is "
        f"{_fmt(entry['capacity_per_s'])} documents/s, what the cores carry at the CPU per "
        "document measured over the fixed loads above (publish, router, broker, recipient; "
        "the envelopes were sealed beforehand, so the seal is not on the cores then); at "
        f"{entry['offered_per_s']}/s ({entry['sent']} documents, {entry['received']} "
        f"received): p50 {_fmt(entry['p50_ms'])} ms, p95 {_fmt(entry['p95_ms'])} ms, "
        f"**p99 {_fmt(entry['p99_ms'])} ms** (target ≤ 50 ms), max {_fmt(entry['max_ms'])} ms.",
        "",
    ]


def _path(results: dict[str, Any]) -> list[str]:
    path = results.get("path_cpu")
    if not path:
        return []
    rsa = path["rsa"]
    return [
        "**CPU per document along the whole path, by party** (4 KiB, 1 recipient; the seal "
        "from the adapter's seal phase, the rest from the fixed loads above):",
        "",
        "| party | CPU µs per document |",
        "|---|---|",
        f"| sender: seal (validate, XML-DSig sign, encrypt) | {_fmt(path['seal_us'])} |",
        f"| sender: publish | {_fmt(path['publish_us'])} |",
        f"| router (SQLite) | {_fmt(path['router_us'])} |",
        f"| broker | {_fmt(path['broker_us'])} |",
        f"| recipient: open (unwrap, decrypt, XML-DSig verify, validate) | "
        f"{_fmt(path['open_us'])} |",
        f"| **total** (target ≤ {path['target_us']}) | **{_fmt(path['total_us'])}** |",
        f"| floor | {_fmt(path['floor_us'])} |",
        "",
        f"The floor, measured in this run: the RSA-2048 private-key operations, with "
        f"`cryptography` directly (median of 5 rounds) — the XML-DSig signature "
        f"(PKCS#1 v1.5) {_fmt(rsa['sign_pkcs1_us'])} µs and the envelope's (PSS) "
        f"{_fmt(rsa['sign_pss_us'])} µs at the sender, one OAEP unwrap "
        f"{_fmt(rsa['unwrap_oaep_us'])} µs at the recipient — plus "
        + _broker_floor(path, results.get("bare_path"))
        + f" The path costs **{_fmt(path['total_over_floor'])}×** its floor "
        f"({'within' if path['within_20pct_of_floor'] else 'not within'} 20 %).",
        "",
    ]


def _broker_floor(path: dict[str, Any], bare: dict[str, Any] | None) -> str:
    """The broker's share of the floor, and what it was measured on."""
    hops, saturation = path["broker_hops"], _fmt(path["ceiling_broker_hops_us"])
    if path.get("floor_broker_basis") != "bare_path" or not bare:
        return (
            f"the ceiling run's broker CPU per message at saturation × {hops} hops "
            f"({saturation} µs)."
        )
    loads = ", ".join(str(load) for load in bare["loads"])
    return (
        f"the broker's own CPU per document on the bare path at the same loads "
        f"({loads}/s, {_fmt(bare['seconds_per_load'])} s each, {bare['message_bytes']} B "
        f"messages, bench/bare_path.py: published with confirms to a quorum queue, forwarded "
        f"to a second, consumed from it; {_fmt(bare['documents'])} documents): "
        f"**{_fmt(path['floor_broker_us'])} µs** for the {hops} hops. The ceiling run's figure "
        f"at saturation would say {saturation} µs; at these loads the broker pays each "
        f"message's log write and wake-ups alone." + _bare_clients(path, bare)
    )


def _bare_clients(path: dict[str, Any], bare: dict[str, Any]) -> str:
    """What the bare path's clients cost, and what that leaves of the floor's band."""
    if path.get("floor_and_clients_us") is None:
        return ""
    return (
        f" Its three clients ({bare['clients']}, the product's AMQP library, each in its own "
        f"process as the parties run: publisher {_fmt(bare['publisher_us'])}, forwarder "
        f"{_fmt(bare['forwarder_us'])}, consumer {_fmt(bare['consumer_us'])} µs) cost "
        f"{_fmt(bare['clients_us'])} µs per document: with nothing of the product's work, "
        f"the path could cost no less than **{_fmt(path['floor_and_clients_us'])} µs**, "
        f"{_fmt(path['floor_and_clients_over_floor'])}× the floor."
    )


def _gateway(results: dict[str, Any]) -> list[str]:
    gateway = results.get("gateway")
    if not gateway:
        return []
    return [
        f"- **Gateway `sendEdoc`** beside the Python API's `send`, the same 4 KiB documents "
        f"({gateway['edxml_bytes']} B of edXML), {gateway['documents']} each, one at a time "
        "(the next sent once the answer came), no router: Python API "
        f"**{_fmt(gateway['python_api_per_s'])}/s**, "
        f"{_fmt(gateway['python_api_cpu_us_per_document'])} µs CPU per document (its "
        "process); gateway "
        f"**{_fmt(gateway['gateway_per_s'])}/s**, "
        f"{_fmt(gateway['gateway_cpu_us_per_document'])} µs CPU per document (the adapter "
        "process: HTTP, HMAC, the state's fsyncs, sealing, publishing; its JSON logs at "
        "INFO), the SDK-faithful client's own "
        f"{_fmt(gateway['gateway_client_cpu_us_per_document'])} µs apart; ratio "
        f"{_fmt(gateway['gateway_ratio'])}.",
    ]


def _large_document(results: dict[str, Any]) -> list[str]:
    large = results.get("large_document")
    if not large:
        return []
    return [
        f"- **A large document** (issue 18): {large['document_bytes']:,} B of edXML in "
        f"{large['chunks']} chunks of {large['chunk_bytes'] // (1 << 20)} MiB, sending adapter "
        "(`send_file`: validate, XML-DSig sign, seal from disk, publish the chunks with a "
        "window of confirms) "
        "→ router → recipient adapter (stage, decrypt, verify, `received()`), each its own "
        f"process: **{_fmt(large['seconds'])} s**, **{_fmt(large['mb_per_s'])} MB/s** "
        f"({_fmt(large['send_seconds'])} s until the sender's last confirm); the bare broker "
        f"forwards {_fmt(large['ceiling_mb_per_s'])} MB/s of the same messages "
        f"(ratio {_fmt(large['throughput_ratio'])}). Peak RSS: router "
        f"{_fmt(large['router_peak_rss_mb'])} MB, sender {_fmt(large['sender_peak_rss_mb'])} "
        f"MB, recipient {_fmt(large['recipient_peak_rss_mb'])} MB."
        + (f" **Refused by the sending adapter**: {large['refused']}" if large["refused"] else "")
        + _large_transport(large)
        + _large_floor(large)
        + _large_phases(large),
    ]


def _large_transport(large: dict[str, Any]) -> str:
    """The chunk transport alone (not a target), beside the end-to-end ratio."""
    if large.get("transport_seconds") is None:
        return ""
    return (
        " Transport only (from the sender's first chunk published to the recipient's last "
        f"chunk staged, the chunk messages' bytes): {_fmt(large['transport_seconds'])} s, "
        f"{_fmt(large['transport_mb_per_s'])} MB/s, transport ratio "
        f"{_fmt(large['transport_ratio'])} of the bare broker; the rest of the end-to-end "
        "seconds is the edges' whole-document work."
    )


def _large_floor(large: dict[str, Any]) -> str:
    """The edges' floor (bench/edge_floor.py) and the best ratio it leaves the path."""
    floor = large.get("edge_floor")
    if not floor:
        return ""
    return (
        " **The edges' floor**, measured in this run with the product's libraries alone, "
        "each step at most the product's own phase doing it (bench/edge_floor.py: the "
        "whole-document work no implementation can overlap with the transport): before the "
        "first chunk, the sender's parse "
        f"{_fmt(floor['sender_parse_s'])} s, its XML-DSig by libxmlsec1 (exclusive C14N "
        f"into SHA-256, RSA) {_fmt(floor['sender_xmldsig_digest_s'])} s and the chunks' "
        f"encryption {_fmt(floor['sender_encrypt_s'])} s; after the last, the recipient's "
        f"XML-DSig check {_fmt(floor['recipient_xmldsig_digest_s'])} s: "
        f"**{_fmt(floor['edge_floor_seconds'])} s**. Even with the chunks carried at the bare "
        f"broker's speed, the path could reach a ratio of at most **{_fmt(large['best_ratio'])}** "
        "here."
    )


def _large_phases(large: dict[str, Any]) -> str:
    """Where the seconds go at each edge: each phase's summed seconds."""
    parts = []
    for side in ("sender", "recipient"):
        phases = large.get(f"{side}_phases") or {}
        if phases:
            listed = ", ".join(f"{name} {_fmt(p['seconds'])}" for name, p in phases.items())
            parts.append(f"{side}: {listed}")
    return f" Phases (s) — {'; '.join(parts)}." if parts else ""


def _latency_budget(results: dict[str, Any]) -> list[str]:
    cpu = results.get("latency_cpu")
    if not cpu:
        return []
    return [
        f"CPU per document along that path, over all {cpu['documents']} documents of the "
        "latency phase: "
        f"sender's process {_fmt(cpu['sender_us'])} µs, router {_fmt(cpu['router_us'])} µs, "
        f"broker {_fmt(cpu['broker_us'])} µs, recipient's adapter "
        f"{_fmt(cpu['recipient_us'])} µs (verify the envelope, RSA-OAEP unwrap, AES-GCM, "
        "XML-DSig verify, edXML validation): "
        f"**{_fmt(cpu['total_us'])} µs** in all, so this machine's cores carry at most "
        f"**{_fmt(cpu['cpu_bound_per_s'])} documents/s** end to end; near that, queues and "
        "latency grow.",
        "",
    ]


_QUESTIONS = {
    "operator_newest_page": "operator: newest page of everything",
    "operator_state_processing": "operator: state = processing",
    "agency_own_list": "the busiest sender: its own list",
    "agency_state_routed": "the busiest sender: state = routed",
    "recipient_filter": "operator: one recipient",
    "overdue_list": "operator: overdue list",
    "overdue_overview": "overdue overview (per agency and tier)",
}


def _tracking(results: dict[str, Any]) -> list[str]:
    tracking = results.get("tracking")
    if not tracking:
        return []
    backends = [name for name in ("sqlite", "postgresql") if name in tracking]
    lines = [
        "## Tracking over a large history",
        "",
        f"`bench/tracking.py`: {tracking['documents']:,} documents "
        f"({tracking['journeys']:,} journeys, {tracking['envelopes']:,} routed envelopes "
        "with their statuses) recorded as the router records them, then each question of "
        "the tracking API timed (median of 5, first page of 50, total counted).",
        "",
        "| question | " + " | ".join(f"{name} ms" for name in backends) + " | matching |",
        "|---|" + "---|" * len(backends) + "---|",
    ]
    for key, label in _QUESTIONS.items():
        times = " | ".join(_fmt(tracking[name]["queries"][key]["median_ms"]) for name in backends)
        matching = tracking[backends[0]]["queries"][key]["matching"]
        lines.append(f"| {label} | {times} | {_fmt(matching)} |")
    fills = ", ".join(
        f"{name} {_fmt(tracking[name]['fill_envelopes_per_s'])}/s" for name in backends
    )
    lines += ["", f"Recording rate while filling (group commits of 1,000): {fills}.", ""]
    return lines


def _reform(results: dict[str, Any]) -> list[str]:
    reform = results.get("reform")
    if not reform:
        return []
    return [
        "## A country-size reform applied live",
        "",
        f"`bench/reform.py`: the 2025 reform of the synthetic country ({reform['provinces']} "
        f"provinces without the ministries, {reform['agencies_before']:,} agencies before, "
        f"{reform['agencies_after']:,} after, {reform['file_bytes']:,} B of JSON) checked as "
        f"`backbone directory apply` checks it — both versions loaded "
        f"{_fmt(reform['load_seconds'])} s, succession {_fmt(reform['succession_seconds'])} s: "
        f"**{_fmt(reform['check_seconds'])} s** — published in "
        f"{_fmt(reform['publish_seconds'])} s, and taken up by the running router "
        f"**{_fmt(reform['taken_up_seconds'])} s** after the publish began.",
        "",
        f"The router's rate (SQLite, 4 KiB, 1 recipient, {reform['envelopes']:,} envelopes a "
        f"batch): **{_fmt(reform['normal_per_s'])}/s** normally, "
        f"**{_fmt(reform['during_apply_per_s'])}/s** while the version was checked and taken "
        f"up (× {_fmt(reform['during_over_normal'])}; {reform['backlog_at_take_up']:,} "
        "envelopes still queued at take-up).",
        "",
    ]


def _optimisations() -> list[str]:
    """The optimisation log (bench/OPTIMISATIONS.md), measured with bench.compare."""
    log = Path(__file__).with_name("OPTIMISATIONS.md")
    if not log.exists():
        return []
    _title, _, body = log.read_text().strip().partition("\n")
    return ["## Optimisations so far", "", body.strip(), ""]


def _reading(results: dict[str, Any]) -> str:
    met = [t["key"] for t in targets(results) if t["met"]]
    missed = [t["key"] for t in targets(results) if t["met"] is False]
    text = (
        f"Met: {', '.join(f'`{k}`' for k in met) or 'none'}. "
        f"Not met: {', '.join(f'`{k}`' for k in missed) or 'none'}."
    )
    memory, sqlite = results["router_memory_per_s"], results["router_per_s"]
    if memory and sqlite:
        text += (
            f" The SQLite store against `memory://` on the same envelopes: {_fmt(sqlite)}/s "
            f"against {_fmt(memory)}/s."
        )
    budget = results.get("cpu_budget") or {}
    if budget.get("router_cpu_bound_per_s") and budget.get("ceiling_cpu_bound_per_s"):
        text += (
            f" The cores bound both rates: at the CPU each costs per message (client process "
            f"plus broker), {budget['cpus']} cores carry at most "
            f"{_fmt(budget['ceiling_cpu_bound_per_s'])}/s of the bare forwarder and "
            f"{_fmt(budget['router_cpu_bound_per_s'])}/s of the router, a ratio of "
            f"{budget['router_cpu_bound_per_s'] / budget['ceiling_cpu_bound_per_s']:.2f}. "
            "The router's own work per envelope (header parse, certificate and RSA-PSS "
            "checks, the store, the route's publish and its events) is what a forwarder "
            "does not do; on a machine where the broker has cores of its own, the router's "
            "rate is bound by its own CPU alone, and replicas share the inbound queue."
        )
    return text + " The numbers are reported as measured; nothing was tuned for this run."


def write_outputs(results: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "results.json", out / "report.md", out / "latency.png"]
    results = {**results, "targets": targets(results)}
    paths[0].write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    paths[1].write_text(markdown(results))
    plot(results, paths[2])
    return paths
