"""Problems found in an edXML message, and where they are: source line and XPath-like path."""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from backbone.errors import EdxmlError, Reason

__all__ = ["Issue", "issue_at", "line_of", "path_of"]


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem: what is wrong, and where (either may be unknown); ``reason`` when it
    has a more specific one than ``edxml_invalid``."""

    message: str
    line: int | None = None
    path: str | None = None
    reason: Reason | None = None
    # A problem another may explain (a child missing where a misspelt one stands): reported
    # after the others, so that the first problem names the culprit.
    secondary: bool = False

    @classmethod
    def from_error(cls, error: EdxmlError) -> Issue:
        return cls(error.message, error.line, error.path)

    def to_error(self, reason: Reason | None = None) -> EdxmlError:
        return EdxmlError(
            self.message,
            reason=reason or self.reason or Reason.EDXML_INVALID,
            line=self.line,
            path=self.path,
        )

    def as_dict(self) -> dict[str, str | int | None]:
        found: dict[str, str | int | None] = {
            "message": self.message,
            "line": self.line,
            "path": self.path,
        }
        if self.reason is not None:  # only the problems with a code of their own say it
            found["reason"] = self.reason.value
        return found


def issue_at(element: etree._Element, message: str, reason: Reason | None = None) -> Issue:
    return Issue(message, line_of(element), path_of(element), reason)


def line_of(element: etree._Element) -> int | None:
    line = element.sourceline
    # lxml-stubs type sourceline loosely; lxml gives an int, or None for built trees.
    return line if isinstance(line, int) else None


def path_of(element: etree._Element) -> str:
    """``/edXML/edXMLEnvelope/.../To[1]/OrganId``: local names, with a position among
    same-named siblings whenever there are several, and always for ``To`` so that a
    recipient's path does not depend on how many recipients there are.
    """
    steps: list[str] = []
    node: etree._Element | None = element
    while node is not None:
        name = etree.QName(node).localname
        parent = node.getparent()
        if parent is not None:
            same = [child for child in parent if child.tag == node.tag]
            if len(same) > 1 or name == "To":
                name = f"{name}[{same.index(node) + 1}]"
        steps.append(name)
        node = parent
    return "/" + "/".join(reversed(steps))
