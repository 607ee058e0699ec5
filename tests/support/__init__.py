"""Test support: one place for what tests share.

- :mod:`testkit` (top level, shared with ``bench``): the development PKI, the small
  national exchange (directory + PKI + broker users: the one world every harness builds
  on), the router and adapters around it, the one minimal edXML document builder, store
  back-ends and envelope headers; re-exported here.
- here: free ports (:mod:`.ports`), pytest fixtures (:mod:`.fixtures`; a test module uses
  one by importing it), child processes (:mod:`.child_process`), drop-folder adapters as
  processes (:mod:`.adapter_process`), throwaway broker nodes (:mod:`.broker_nodes`) and the
  tracking tests' stores and router (:mod:`.tracking_fixtures`, imported from there).
"""

from tests.support.ports import free_port, free_ports  # noqa: I001 - ports before broker_nodes
from tests.support.broker_nodes import LocalCluster, LocalNode, local_node_fixture
from tests.support.child_process import ChildProcess
from tests.support.adapter_process import AdapterProcess
from tests.support.fixtures import adapter_deployment_fixture
from testkit import (
    DIRECT,
    HUB,
    MAX_ENVELOPE_BYTES,
    VIA_HUB,
    Deployment,
    DevPki,
    Exchange,
    Inbox,
    build_directory,
    document_edxml,
    document_id,
    document_with_attachment,
    make_pki,
    make_router,
    open_deployment,
)

__all__ = [
    "DIRECT",
    "HUB",
    "MAX_ENVELOPE_BYTES",
    "VIA_HUB",
    "AdapterProcess",
    "ChildProcess",
    "Deployment",
    "DevPki",
    "Exchange",
    "Inbox",
    "LocalCluster",
    "LocalNode",
    "adapter_deployment_fixture",
    "build_directory",
    "document_edxml",
    "document_id",
    "document_with_attachment",
    "free_port",
    "free_ports",
    "local_node_fixture",
    "make_pki",
    "make_router",
    "open_deployment",
]
