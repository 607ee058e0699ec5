"""The delivery-limit options of every command that declares inboxes (`backbone topology
apply`, `backbone directory apply`): they must declare them as the routers do, or a router's
next declaration is refused (PRECONDITION_FAILED)."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["BrokerDeliveryLimitOption", "DeliveryLimitOption"]

DeliveryLimitOption = Annotated[
    int, typer.Option(min=1, help="Failed deliveries before a message is dead-lettered.")
]
BrokerDeliveryLimitOption = Annotated[
    bool,
    typer.Option(
        help="Declare x-delivery-limit on the inbound queue and inboxes; --no-broker-delivery-"
        "limit declares none (as the router's broker_delivery_limit: false). The router counts "
        "its own attempts either way."
    ),
]
