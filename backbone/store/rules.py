"""What both store implementations decide the same way, kept in one place so the in-memory
store used by other components' tests cannot drift from the SQL one."""

from __future__ import annotations

from datetime import UTC, datetime

from backbone.store.abc import ClaimState, Outcome, SubmissionKey

__all__ = ["judge", "utc"]


def judge(identity: SubmissionKey, payload_digest: str, outcome: Outcome | None) -> ClaimState:
    """The state of a claim on an identity already held with ``payload_digest``/``outcome``.

    An unfinished claim is RESUMED even when another envelope holds it: the same bytes were
    submitted again and the first submission never finished (its router crashed, or it is
    still in flight). The caller then hands the claim over to the new envelope, so the
    ``finish``/``record_routed`` calls that follow land on the row.
    """
    if payload_digest != identity.payload_digest:
        return ClaimState.CONFLICT
    return ClaimState.RESUMED if outcome is None else ClaimState.DUPLICATE


def utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive datetime is a caller's bug, refused rather than guessed."""
    if moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: the store keeps UTC only")
    return moment.astimezone(UTC)
