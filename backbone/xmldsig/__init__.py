"""XML-DSig inside edXML: :func:`sign_edxml` at the sender, :func:`verify_edxml` at the
recipient (:mod:`backbone.xmldsig.document`), over one enveloped signature of the backbone's
profile (:mod:`backbone.xmldsig.profile`: the template, the closed list of accepted shapes,
the signed bytes), made and checked by libxmlsec1 on the parsed tree
(:mod:`backbone.xmldsig.libxmlsec`); a large document's signed file is the original's bytes
with the signature spliced in where that is safe (:mod:`backbone.xmldsig.splice`)."""

from backbone.xmldsig.document import (
    DS_NS,
    EDXML_NS,
    VerifiedXml,
    sign_edxml,
    verify_edxml,
)

__all__ = ["DS_NS", "EDXML_NS", "VerifiedXml", "sign_edxml", "verify_edxml"]
