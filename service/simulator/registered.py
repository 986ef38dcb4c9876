"""What the registry keeps of an entry, and how it shows it in ITI-18.

Kept: the ExtrinsicObject as received, re-identified with its entryUUID (every Classification
and ExternalIdentifier gets a fresh id), with the hash, size and repositoryUniqueId computed by
the simulator (spec §3.2: assigned by the DMP, not sent by the source). Shown: that copy with the
entry's current `status`, its `lid` (logicalId) and `rim:VersionInfo versionName` (wire contract).
"""

from __future__ import annotations

import copy
import uuid

from lxml import etree

from bridge.xmlsafe import parse_xml
from service.simulator.namespaces import RIM, q
from service.simulator.storage import StoredDocument

REPOSITORY_UNIQUE_ID = "1.2.250.1.213.4.1.1.999"  # invented OID of the simulator's repository
BEFORE_VERSION_INFO = (q(RIM, "Slot"), q(RIM, "Name"), q(RIM, "Description"))


def _slot(name: str, value: str) -> etree._Element:
    slot = etree.Element(q(RIM, "Slot"), name=name)
    values = etree.SubElement(slot, q(RIM, "ValueList"))
    etree.SubElement(values, q(RIM, "Value")).text = value
    return slot


def registered_entry(entry: etree._Element, entry_uuid: str, *, sha1: str, size: int) -> bytes:
    """A standalone copy of `entry` as the registry keeps it."""
    registered = copy.deepcopy(entry)
    registered.set("id", entry_uuid)
    for attr in ("lid", "status"):
        registered.attrib.pop(attr, None)
    for child in registered.findall(q(RIM, "VersionInfo")):
        registered.remove(child)
    for child in registered.iter(q(RIM, "Classification"), q(RIM, "ExternalIdentifier")):
        child.set("id", f"urn:uuid:{uuid.uuid4()}")
        for attr in ("classifiedObject", "registryObject"):
            if child.get(attr):  # they classify or identify this entry
                child.set(attr, entry_uuid)
    for slot in registered.findall(q(RIM, "Slot")):
        if slot.get("name") in ("hash", "size", "repositoryUniqueId"):
            registered.remove(slot)
    # Slots come first in a RegistryObject (rim.xsd), so they are inserted at the top.
    for index, (name, value) in enumerate(
        (("hash", sha1), ("size", str(size)), ("repositoryUniqueId", REPOSITORY_UNIQUE_ID))
    ):
        registered.insert(index, _slot(name, value))
    return bytes(etree.tostring(registered))


def shown_entry(doc: StoredDocument) -> etree._Element:
    """The LeafClass ExtrinsicObject of a stored version: status, lid and VersionInfo set."""
    element = parse_xml(doc.metadata_xml)
    element.set("status", doc.status)
    element.set("lid", doc.logical_id)
    position = 0
    for index, child in enumerate(element):
        if child.tag in BEFORE_VERSION_INFO:
            position = index + 1
    info = etree.Element(q(RIM, "VersionInfo"), versionName=str(doc.version))
    element.insert(position, info)
    return element
