"""Plain helpers shared by the tests (through :mod:`tests.support`) and the benchmark
(``bench``): a development PKI, the small national exchange on a real broker (directory,
PKI, one broker user per connected system), a router and adapters around it, minimal edXML
documents, and store back-ends with envelope headers to feed them.

It sits at the top level, beside ``tests`` and ``bench``, because the benchmark must not
import the tests, and it is not product code: it needs ``adapters`` (adapter
configurations) and pytest (an unreachable PostgreSQL fails the test run), so it cannot be
``backbone.testing``. pytest fixtures stay in :mod:`tests.support`.
"""

from testkit.deployment import MAX_ENVELOPE_BYTES, Deployment, Inbox, make_router, open_deployment
from testkit.documents import document_edxml, document_id, document_with_attachment, status_edxml
from testkit.exchange import DIRECT, HUB, VIA_HUB, Exchange, build_directory
from testkit.fake_adapter import FakeAdapter
from testkit.pki import SAMPLE_ORGANS, DevPki, make_pki
from testkit.store import POSTGRES_URL, Backend, backend, header

__all__ = [
    "DIRECT",
    "HUB",
    "MAX_ENVELOPE_BYTES",
    "POSTGRES_URL",
    "SAMPLE_ORGANS",
    "VIA_HUB",
    "Backend",
    "Deployment",
    "DevPki",
    "Exchange",
    "FakeAdapter",
    "Inbox",
    "backend",
    "build_directory",
    "document_edxml",
    "document_id",
    "document_with_attachment",
    "header",
    "make_pki",
    "make_router",
    "open_deployment",
    "status_edxml",
]
