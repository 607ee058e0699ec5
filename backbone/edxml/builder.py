"""Models → edXML bytes: UTF-8 with an XML declaration, every element under the ``edXML`` prefix.

Elements are written in the vendor samples' order: the schemas take a group's children in
any order, but software on the other side may expect that one. What this writes validates
(and reads back equal) as long as the model's values are valid; it writes no Signature (the
XML-DSig layer adds one to ``edXMLHeader``).
"""

from __future__ import annotations

import base64

from lxml import etree

from backbone.edxml.dates import format_date, format_timestamp
from backbone.edxml.models import (
    Business,
    EdxmlDocument,
    EdxmlMessage,
    EdxmlStatus,
    Organization,
    OtherInfo,
    ResponseFor,
    StaffInfo,
)
from backbone.edxml.names import NAMESPACE, PREFIX, q
from backbone.errors import EdxmlError, Reason

__all__ = ["build"]

_NSMAP = {PREFIX: NAMESPACE}
_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'


def build(message: EdxmlMessage) -> bytes:
    """Serialize a message; :class:`EdxmlError` if a text holds characters XML cannot carry."""
    root = etree.Element(q("edXML"), nsmap=_NSMAP)
    envelope = _add(root, "edXMLEnvelope")
    header = _add(envelope, "edXMLHeader")
    try:
        if isinstance(message, EdxmlStatus):
            _status(header, message)
        else:
            _document(root, envelope, header, message)
    except ValueError as exc:  # lxml refuses control characters and the like
        raise EdxmlError(f"cannot write edXML: {exc}", reason=Reason.EDXML_INVALID) from None
    # The declaration is written by hand: lxml's uses single quotes, which some agencies'
    # software does not expect.
    return _DECLARATION + etree.tostring(root, encoding="UTF-8", pretty_print=True)


def _add(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
    element = etree.SubElement(parent, q(name))
    if text is not None:
        element.text = text
    return element


def _optional(parent: etree._Element, name: str, text: str | None) -> None:
    if text is not None:
        _add(parent, name, text)


def _status(header: etree._Element, message: EdxmlStatus) -> None:
    fields = _add(header, "MessageHeader")
    _organization(fields, "From", message.sender)
    _response_for(fields, message.response_for)
    _staff_info(fields, message.staff_info)
    _add(fields, "StatusCode", message.status_code.value)
    _optional(fields, "Description", message.description)
    _add(fields, "Timestamp", format_timestamp(message.timestamp))


def _document(
    root: etree._Element,
    envelope: etree._Element,
    header: etree._Element,
    message: EdxmlDocument,
) -> None:
    fields = _add(header, "MessageHeader")
    _organization(fields, "From", message.sender)
    for recipient in message.recipients:
        _organization(fields, "To", recipient)
    _add(fields, "DocumentId", message.document_id)
    code = _add(fields, "Code")
    _add(code, "CodeNumber", message.code.code_number)
    _add(code, "CodeNotation", message.code.code_notation)
    promulgation = _add(fields, "PromulgationInfo")
    _add(promulgation, "Place", message.promulgation_info.place)
    _add(
        promulgation,
        "PromulgationDate",
        format_date(message.promulgation_info.promulgation_date),
    )
    document_type = _add(fields, "DocumentType")
    _add(document_type, "Type", message.document_type.type)
    _optional(document_type, "TypeDetail", message.document_type.type_detail)
    _optional(document_type, "TypeName", message.document_type.type_name)
    _add(fields, "Subject", message.subject)
    _optional(fields, "Content", message.content)
    if message.signer_info is not None:
        signer = _add(fields, "SignerInfo")
        _optional(signer, "Competence", message.signer_info.competence)
        _optional(signer, "Position", message.signer_info.position)
        _add(signer, "FullName", message.signer_info.full_name)
    if message.due_date is not None:
        _add(fields, "DueDate", format_date(message.due_date))
    if message.other_info is not None:
        _other_info(fields, message.other_info)
    for response_for in message.response_for:
        _response_for(fields, response_for)
    _optional(fields, "SteeringType", message.steering_type)
    if message.to_places:
        places = _add(fields, "ToPlaces")
        for place in message.to_places:
            _add(places, "Place", place)

    trace_list = _add(header, "TraceHeaderList")
    for trace in message.trace_headers:
        trace_header = _add(trace_list, "TraceHeader")
        _add(trace_header, "OrganId", trace.organ_id)
        _add(trace_header, "Timestamp", format_timestamp(trace.timestamp))
    _business(trace_list, message.business)

    manifest = _add(_add(envelope, "edXMLBody"), "edXMLManifest")
    manifest.set("version", "1.0")
    for reference in message.references:
        entry = _add(manifest, "Reference")
        _add(entry, "ContentId", reference.content_id)
        _optional(entry, "ContentType", reference.content_type)
        _optional(entry, "Description", reference.description)
        _optional(entry, "AttachmentName", reference.attachment_name)
    if message.attachments:
        encoded = _add(root, "AttachmentEncoded")
        for attachment in message.attachments:
            item = _add(encoded, "Attachment")
            _add(item, "ContentId", attachment.content_id)
            _optional(item, "AttachmentName", attachment.attachment_name)
            _optional(item, "Description", attachment.description)
            _optional(item, "ContentType", attachment.content_type)
            _add(item, "ContentTransferEncoded", base64.b64encode(attachment.content).decode())


def _organization(parent: etree._Element, name: str, organization: Organization) -> None:
    element = _add(parent, name)
    _add(element, "OrganId", organization.organ_id)
    _optional(element, "OrganizationInCharge", organization.organization_in_charge)
    _optional(element, "OrganName", organization.organ_name)
    _optional(element, "OrganAdd", organization.organ_add)
    _optional(element, "Email", organization.email)
    _optional(element, "Telephone", organization.telephone)
    _optional(element, "Fax", organization.fax)
    _optional(element, "Website", organization.website)


def _response_for(parent: etree._Element, response_for: ResponseFor) -> None:
    element = _add(parent, "ResponseFor")
    _add(element, "OrganId", response_for.organ_id)
    _optional(element, "Code", response_for.code)
    if response_for.promulgation_date is not None:
        _add(element, "PromulgationDate", format_date(response_for.promulgation_date))
    _add(element, "DocumentId", response_for.document_id)


def _staff_info(parent: etree._Element, staff_info: StaffInfo | None) -> None:
    if staff_info is None:
        return
    element = _add(parent, "StaffInfo")
    _optional(element, "Department", staff_info.department)
    _optional(element, "Staff", staff_info.staff)
    _optional(element, "Mobile", staff_info.mobile)
    _optional(element, "Email", staff_info.email)


def _other_info(parent: etree._Element, other: OtherInfo) -> None:
    element = _add(parent, "OtherInfo")
    _optional(element, "Priority", other.priority)
    _optional(element, "SphereOfPromulgation", other.sphere_of_promulgation)
    _optional(element, "TyperNotation", other.typer_notation)
    if other.promulgation_amount is not None:
        _add(element, "PromulgationAmount", str(other.promulgation_amount))
    if other.page_amount is not None:
        _add(element, "PageAmount", str(other.page_amount))
    if other.direction is not None:
        _add(element, "Direction", "true" if other.direction else "false")
    if other.appendixes:
        appendixes = _add(element, "Appendixes")
        for appendix in other.appendixes:
            _add(appendixes, "Appendix", appendix)


def _business(parent: etree._Element, business: Business) -> None:
    element = _add(parent, "Bussiness")
    _optional(element, "DocumentId", business.document_id)
    _add(element, "BussinessDocType", str(business.business_doc_type.value))
    _optional(element, "BussinessDocReason", business.business_doc_reason)
    info = business.business_document_info
    if info is not None:
        info_element = _add(element, "BussinessDocumentInfo")
        _optional(info_element, "DocumentInfo", info.document_info)
        _optional(info_element, "DocumentReceiver", info.document_receiver)
        if info.receivers:
            receivers = _add(info_element, "ReceiverList")
            for receiver in info.receivers:
                receiver_element = _add(receivers, "Receiver")
                _optional(receiver_element, "ReceiverType", receiver.receiver_type)
                _add(receiver_element, "OrganId", receiver.organ_id)
    _optional(element, "Paper", business.paper)
    _staff_info(element, business.staff_info)
    if business.replacements:
        replacements = _add(element, "ReplacementInfoList")
        for replacement in business.replacements:
            replacement_element = _add(replacements, "ReplacementInfo")
            _add(replacement_element, "DocumentId", replacement.document_id)
            if replacement.organ_ids:
                organ_ids = _add(replacement_element, "OrganIdList")
                for organ_id in replacement.organ_ids:
                    _add(organ_ids, "OrganId", organ_id)
