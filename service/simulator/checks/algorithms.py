"""SHA-1 in XML signatures: accepted by the DMP from DRIMbox (spec §4.3, §7), but a strict
judge refuses it; the lenient mode logs it.
"""

from __future__ import annotations

from lxml import etree

from service.simulator.namespaces import DS
from service.simulator.problems import Problem

SHA1_ALGORITHMS = frozenset({
    "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
    "http://www.w3.org/2000/09/xmldsig#sha1",
    "http://www.w3.org/2000/09/xmldsig#dsa-sha1",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1",
})


def sha1_problems(root: etree._Element, code: str, location: str) -> list[Problem]:
    """One lenient problem when any SignatureMethod or DigestMethod under `root` is SHA-1."""
    used = {
        el.get("Algorithm")
        for el in root.iter(f"{{{DS}}}SignatureMethod", f"{{{DS}}}DigestMethod",
                            "{http://uri.etsi.org/01903/v1.1.1#}DigestMethod")
    }
    if used & SHA1_ALGORITHMS:
        return [Problem(code, location, "Algorithme SHA-1 utilisé dans la signature : SHA-256 "
                                        "est attendu.", lenient=True)]
    return []
