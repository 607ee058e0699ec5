"""The vendors' real edXML files (../shared/interop/edxml, read in place) through the
gateway, as agency software sends them: each handled as it must be.

- ``edoc_new.edxml`` is malformed (bytes before the XML declaration): refused, nothing sent;
- ``edoc_revocation.edxml`` names recipients the directory does not list: refused, naming them;
- the four statuses (01, 02, 03, 06) answer document ``…7816/VPCP-TTĐT``: once that document
  went from G22 to H41 through the gateways, H41's software sends them unchanged and G22's
  software receives each with the same content; the vendor's own 01 after the gateway's 01
  is taken without a second 01 going out.

What the recipient's software gets is the file the sender's software sent, byte for byte,
with the sending adapter's XML-DSig put in ``edXMLHeader`` (in place of any signature the
file had): the statuses are compared byte for byte once that one element is taken out.
"""

from __future__ import annotations

import asyncio
import base64
import re
from pathlib import Path

import pytest

from backbone.edxml import parse_xml
from testkit import Deployment, document_edxml, document_id
from tests.support import adapter_deployment_fixture  # noqa: F401
from tests.support.gateway import call, running_gateway, until

pytestmark = pytest.mark.clock  # document ids carry the Vietnam date, from backbone.clock

G22, H41 = "000.00.00.G22", "000.00.00.H41"
VENDOR_DOCUMENT = "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT"
STATUSES = [
    "status_inbox__01.edxml",
    "status_acceptance_03.edxml",
    "status_rejection_02.edxml",
    "status_finish_06.edxml",
]


SIGNATURE = re.compile(rb"<ds:Signature\b.*?</ds:Signature>", re.S)


async def test_the_vendor_files_through_the_gateway_are_each_handled_as_they_must_be(
    adapter_deployment: Deployment, tmp_path: Path, shared_edxml: Path
) -> None:
    async with (
        running_gateway(adapter_deployment, G22, tmp_path / "g22") as gateway_a,
        running_gateway(adapter_deployment, H41, tmp_path / "h41") as gateway_b,
    ):
        sender, recipient = gateway_a.sdk(), gateway_b.sdk()

        broken = await call(
            sender.send_edoc, (shared_edxml / "edoc_new.edxml").read_bytes(), sender=G22
        )
        assert broken is not None
        assert (broken["status"], broken["ErrorCode"]) == ("FAIL", "edxml_not_well_formed")
        assert "line 1" in broken["ErrorDesc"]

        revocation = (shared_edxml / "edoc_revocation.edxml").read_bytes()
        refused = await call(sender.send_edoc, revocation, sender=G22)
        assert refused is not None
        assert (refused["status"], refused["ErrorCode"]) == ("FAIL", "recipient_unknown")
        assert "000.00.00.H14" in refused["ErrorDesc"]
        nothing = await call(sender.sent_list)
        assert nothing is not None
        assert nothing["data"] == []  # neither was sent

        # The document the vendor statuses answer, sent from G22 to H41.
        original = document_edxml(G22, [H41], 1).replace(
            document_id(G22, 1).encode(), VENDOR_DOCUMENT.encode()
        )
        sent = await call(sender.send_edoc, original, sender=G22)
        assert sent is not None
        assert sent["status"] == "OK", sent
        listed = await until(recipient.received_list, lambda r: len(r["data"]) == 1)
        doc_id = listed["data"][0]["docId"]
        await call(recipient.update_status, doc_id, "done")  # the gateway's 01 goes now

        for name in STATUSES:
            vendor = (shared_edxml / name).read_bytes()
            answer = await call(recipient.send_edoc, vendor, sender=H41, message_type="status")
            assert answer is not None
            assert answer["status"] == "OK", (name, answer)

        # G22 receives the gateway's 01 and the vendor's 03, 02, 06: one 01, never two.
        statuses = await until(
            lambda: sender.received_list("status"), lambda r: len(r["data"]) >= 4
        )
        await asyncio.sleep(1.0)
        statuses = await call(sender.received_list, "status")
        assert statuses is not None
        received = {}
        for item in statuses["data"]:
            fetched = await call(sender.get_edoc, item["docId"])
            assert fetched is not None
            edxml = base64.b64decode(fetched["data"])
            code = parse_xml(edxml).findtext(".//{*}StatusCode")
            assert code not in received, f"status {code} arrived twice"
            received[code] = edxml
        assert sorted(received) == ["01", "02", "03", "06"]
        for name in STATUSES[1:]:
            vendor = (shared_edxml / name).read_bytes()
            code = parse_xml(vendor).findtext(".//{*}StatusCode")
            # Byte for byte the file H41's software sent, with H41's signature put in.
            assert SIGNATURE.sub(b"", received[code]) == vendor, name
            assert len(SIGNATURE.findall(received[code])) == 1
