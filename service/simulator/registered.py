"""What the registry keeps of an entry: the ExtrinsicObject as received, re-identified with
its entryUUID, with the status and the computed hash, size and repositoryUniqueId (spec §3.2:
these are assigned by the DMP, not sent by the source).
"""

from __future__ import annotations

import copy
import uuid

from lxml import etree

from service.simulator.namespaces import RIM, STATUS_APPROVED, q

REPOSITORY_UNIQUE_ID = "1.2.250.1.213.4.1.1.999"  # invented OID of the simulator's repository


def _slot(name: str, value: str) -> etree._Element:
    slot = etree.Element(q(RIM, "Slot"), name=name)
    values = etree.SubElement(slot, q(RIM, "ValueList"))
    etree.SubElement(values, q(RIM, "Value")).text = value
    return slot


def registered_entry(entry: etree._Element, entry_uuid: str, *, sha1: str, size: int) -> bytes:
    """A standalone copy of `entry` as the registry answers it in ITI-18."""
    registered = copy.deepcopy(entry)
    old_id = registered.get("id") or ""
    registered.set("id", entry_uuid)
    registered.set("status", STATUS_APPROVED)
    for child in registered.iter(q(RIM, "Classification"), q(RIM, "ExternalIdentifier")):
        if not (child.get("id") or "").startswith("urn:uuid:"):
            child.set("id", f"urn:uuid:{uuid.uuid4()}")
        for attr in ("classifiedObject", "registryObject"):
            if child.get(attr) == old_id:
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
