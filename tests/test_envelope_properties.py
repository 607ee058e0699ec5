"""The properties a direct publish carries (``envelope_properties``) are those aio-pika would
put on the wire for the same envelope's message (``envelope_message``): the router and the
adapters publish through aiormq without building that message."""

from __future__ import annotations

from datetime import UTC, datetime

from backbone.wire import envelope_message, envelope_properties
from testkit.store import header

_MOMENT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _on_the_wire(properties: object) -> dict[str, object]:
    fields = {name: getattr(properties, name) for name in properties.__slots__}  # type: ignore[attr-defined]
    fields["timestamp"] = _MOMENT  # set at each call: the one field that differs
    return fields


def test_envelope_properties_are_those_of_the_envelope_message_with_its_user_id() -> None:
    sealed = header(recipients=("000.00.00.H41", "000.00.00.H53"))
    made = envelope_properties(
        sealed, message_id="m/1", user_id="vdx-g22", cc=("k2",), republished=True
    )
    message = envelope_message(
        b"body", sealed, message_id="m/1", user_id="vdx-g22", cc=("k2",), republished=True
    )
    assert made.user_id == "vdx-g22"
    assert _on_the_wire(made) == _on_the_wire(message.properties)


def test_envelope_properties_without_a_user_id_carry_none() -> None:
    sealed = header()
    made = envelope_properties(sealed, message_id="m/2")
    assert made.user_id is None
    assert _on_the_wire(made) == _on_the_wire(
        envelope_message(b"body", sealed, message_id="m/2").properties
    )
