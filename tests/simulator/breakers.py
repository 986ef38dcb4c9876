"""Small edits that break exactly one thing of a valid request (for the negative tests)."""

from __future__ import annotations

from collections.abc import Callable

from lxml import etree

from tests.simulator.wire_base import HL7, RIM, SAML, XDSB, q

Edit = Callable[[etree._Element], None]
NS = {"rim": RIM, "hl7": HL7, "saml2": SAML, "xdsb": XDSB}
TYPE = "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983"
CLASS = "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a"
FORMAT = "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d"
CONF = "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f"
FACILITY = "urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1"
PRACTICE = "urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead"


def _one(root: etree._Element, path: str) -> etree._Element:
    found = root.xpath(path, namespaces=NS)
    assert isinstance(found, list) and found, path
    element = found[0]
    assert isinstance(element, etree._Element)
    return element


def code(scheme: str, value: str | None = None, system: str | None = None) -> Edit:
    """Set the code and/or codingScheme of Document01's classification `scheme`."""
    def edit(request: etree._Element) -> None:
        cl = _one(request, f"//rim:ExtrinsicObject[@id='Document01']/rim:Classification"
                           f"[@classificationScheme='{scheme}']")
        if value is not None:
            cl.set("nodeRepresentation", value)
        if system is not None:
            _one(cl, "rim:Slot[@name='codingScheme']//rim:Value").text = system
    return edit


def add_code(scheme: str, value: str, system: str) -> Edit:
    def edit(request: etree._Element) -> None:
        anchor = _one(request, f"//rim:ExtrinsicObject[@id='Document01']/rim:Classification"
                               f"[@classificationScheme='{scheme}']")
        cl = etree.Element(q(RIM, "Classification"), id="extra", classificationScheme=scheme,
                           classifiedObject="Document01", nodeRepresentation=value)
        vl = etree.SubElement(etree.SubElement(cl, q(RIM, "Slot"), name="codingScheme"),
                              q(RIM, "ValueList"))
        etree.SubElement(vl, q(RIM, "Value")).text = system
        anchor.addnext(cl)
    return edit


def slot(name: str, value: str | None, owner: str = "Document01") -> Edit:
    """Set (or, with None, remove) a slot of `owner` (Document01 or SubmissionSet01)."""
    def edit(request: etree._Element) -> None:
        found = _one(request, f"//*[@id='{owner}']/rim:Slot[@name='{name}']")
        if value is None:
            parent = found.getparent()
            assert parent is not None
            parent.remove(found)
        else:
            _one(found, ".//rim:Value").text = value
    return edit


def attribute(path: str, name: str, value: str) -> Edit:
    def edit(root: etree._Element) -> None:
        _one(root, path).set(name, value)
    return edit


def remove(path: str) -> Edit:
    def edit(root: etree._Element) -> None:
        element = _one(root, path)
        parent = element.getparent()
        assert parent is not None
        parent.remove(element)
    return edit


def both(*edits: Edit) -> Edit:
    def edit(root: etree._Element) -> None:
        for one in edits:
            one(root)
    return edit


def vihf_value(name: str, value: str) -> Edit:
    return attribute_text(f"//saml2:Attribute[@Name='{name}']/saml2:AttributeValue", value)


def attribute_text(path: str, value: str) -> Edit:
    def edit(root: etree._Element) -> None:
        _one(root, path).text = value
    return edit
