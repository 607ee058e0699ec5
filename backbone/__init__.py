"""vdx-backbone: routing backbone for official documents (edXML, QCVN 102:2016) over RabbitMQ.

The top level re-exports the value objects and errors most callers need; each area keeps
its full API in its own package (``backbone.edxml``, ``backbone.directory``,
``backbone.envelope``, ``backbone.pki``). Every error is in :mod:`backbone.errors`.
"""

from backbone.directory import Directory, load_directory
from backbone.edxml import BusinessDocType, EdxmlDocument, EdxmlStatus, Kind, StatusCode
from backbone.envelope import EnvelopeHeader
from backbone.errors import (
    BackboneError,
    BrokerUnavailableError,
    CertificateError,
    DirectoryError,
    EdxmlError,
    EnvelopeError,
    OrganCodeError,
    Reason,
)
from backbone.organ import OrganCode, SystemId, parse_identifier
from backbone.pki import CertificateValidator
from backbone.tiers import Tier, TierModel

__all__ = [
    "BackboneError",
    "BrokerUnavailableError",
    "BusinessDocType",
    "CertificateError",
    "CertificateValidator",
    "Directory",
    "DirectoryError",
    "EdxmlDocument",
    "EdxmlError",
    "EdxmlStatus",
    "EnvelopeError",
    "EnvelopeHeader",
    "Kind",
    "OrganCode",
    "OrganCodeError",
    "Reason",
    "StatusCode",
    "SystemId",
    "Tier",
    "TierModel",
    "load_directory",
    "parse_identifier",
]
