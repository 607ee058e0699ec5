"""Both organ-code formats end to end on the real broker: a Decision 20/2020 agency sends,
receives and answers beside QCVN 102 ones, directly and behind a hub that serves a subtree of
each format (testkit's world: ``H01.151`` direct, ``H53.318.02`` behind hub 00.53.W00)."""

from __future__ import annotations

import pytest

from backbone.edxml import EdxmlStatus, StatusCode
from backbone.organ import CodeFormat, OrganCode
from backbone.pki.binding import bound_identities
from tests.support import HUB, Deployment, adapter_deployment_fixture, document_edxml  # noqa: F401

pytestmark = pytest.mark.broker

G22, H53_DISTRICT = "000.00.00.G22", "000.00.32.H53"
QD20_DIRECT, QD20_BEHIND_HUB = "H01.151", "H53.318.02"


async def test_a_document_reaches_decision_20_agencies_directly_and_behind_a_hub(
    adapter_deployment: Deployment,
) -> None:
    g22 = await adapter_deployment.adapter(G22)
    direct = await adapter_deployment.adapter(QD20_DIRECT)
    hub = await adapter_deployment.adapter(HUB)
    direct_inbox, hub_inbox = adapter_deployment.inbox(direct), adapter_deployment.inbox(hub)

    receipt = await g22.send(document_edxml(G22, [QD20_DIRECT, QD20_BEHIND_HUB, H53_DISTRICT], 1))

    [to_direct] = await direct_inbox.wait_for(1)
    assert to_direct.recipient == QD20_DIRECT
    assert to_direct.envelope_id == receipt.envelope_id
    at_hub = await hub_inbox.wait_for(2)  # the hub's two subtrees, one in each format
    assert sorted(item.recipient for item in at_hub) == sorted([QD20_BEHIND_HUB, H53_DISTRICT])
    assert await direct_inbox.quiet() == [to_direct]


async def test_a_decision_20_agency_sends_and_its_statuses_reach_the_qcvn_102_sender(
    adapter_deployment: Deployment,
) -> None:
    g22 = await adapter_deployment.adapter(G22)
    direct = await adapter_deployment.adapter(QD20_DIRECT)
    g22_inbox, direct_inbox = adapter_deployment.inbox(g22), adapter_deployment.inbox(direct)

    await direct.send(document_edxml(QD20_DIRECT, [G22], 2))
    [document] = await g22_inbox.wait_for(1)
    assert document.header.sender == QD20_DIRECT

    await g22.send(document_edxml(G22, [QD20_DIRECT], 3))
    # G22's 01 for document 2 and document 3 reach the direct agency in either order.
    [received] = [
        item for item in await direct_inbox.wait_for(2) if not isinstance(item.message, EdxmlStatus)
    ]
    await direct.send_status(received.message.document_id, StatusCode.ACCEPTED)  # type: ignore[union-attr]
    statuses = [
        item.message
        for item in await g22_inbox.wait_for(3)  # document 2, then the 01 and the 03 on 3
        if isinstance(item.message, EdxmlStatus)
    ]
    assert sorted(status.status_code for status in statuses) == [
        StatusCode.ARRIVED,
        StatusCode.ACCEPTED,
    ]
    assert {status.sender.organ_id for status in statuses} == {QD20_DIRECT}
    assert {status.response_for.organ_id for status in statuses} == {G22}


def test_a_decision_20_agency_certificate_is_bound_to_its_code(
    adapter_deployment: Deployment,
) -> None:
    certificate = adapter_deployment.exchange.pki.agency(QD20_DIRECT).certificate
    [identity] = bound_identities(certificate)
    assert identity == OrganCode.parse(QD20_DIRECT)
    assert isinstance(identity, OrganCode)
    assert identity.format is CodeFormat.QD20
