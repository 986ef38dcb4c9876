"""A minimal CDA R2 N1 (structuration minimale, spec §4.1) wrapping a tiny PDF, for tests."""

from __future__ import annotations

import base64
from collections.abc import Callable

from lxml import etree

TINY_PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)

CDA_N1 = """<?xml version="1.0" encoding="UTF-8"?>
<ClinicalDocument xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <realmCode code="FR"/>
  <typeId root="2.16.840.1.113883.1.3" extension="POCD_HD000040"/>
  <templateId root="2.16.840.1.113883.2.8.2.1"/>
  <templateId root="1.2.250.1.213.1.1.1.1"/>
  <templateId root="1.3.6.1.4.1.19376.1.2.20"/>
  <id root="{doc_uid}"/>
  <code code="11506-3" displayName="CR ou fiche de suivi de soins par auxiliaire médical"
    codeSystem="2.16.840.1.113883.6.1" codeSystemName="LOINC"/>
  <title>Fiche de soins infirmiers</title>
  <effectiveTime value="20240105101500+0100"/>
  <confidentialityCode code="N" displayName="Normal" codeSystem="2.16.840.1.113883.5.25"/>
  <languageCode code="fr-FR"/>
  <setId root="{set_id}"/>
  <versionNumber value="{version}"/>
  <recordTarget>
    <patientRole>
      <id extension="{ins}" root="{ins_oid}"/>
      <patient classCode="PSN">
        <name>
          <family qualifier="BR">TEST</family>
          <given>CAMILLE</given>
          <given qualifier="BR">CAMILLE</given>
        </name>
        <administrativeGenderCode code="F" displayName="Féminin"
          codeSystem="2.16.840.1.113883.5.1"/>
        <birthTime value="19790328"/>
        <birthplace><place><addr><county>51215</county></addr></place></birthplace>
      </patient>
    </patientRole>
  </recordTarget>
  <author>
    <time value="20240105101500+0100"/>
    <assignedAuthor>
      <id root="1.2.250.1.71.4.2.1" extension="899700366240"/>
      <code code="G15_60" displayName="Infirmier" codeSystem="1.2.250.1.213.1.1.4.5"/>
      <assignedPerson><name><given>Alex</given><family>SOIGNANT</family></name></assignedPerson>
      <representedOrganization>
        <id root="1.2.250.1.71.4.2.2" extension="499700366240007"/>
        <name>CABINET INFIRMIER DEMO</name>
      </representedOrganization>
    </assignedAuthor>
  </author>
  <custodian>
    <assignedCustodian>
      <representedCustodianOrganization>
        <id root="1.2.250.1.71.4.2.2" extension="499700366240007"/>
        <name>CABINET INFIRMIER DEMO</name>
      </representedCustodianOrganization>
    </assignedCustodian>
  </custodian>
  <legalAuthenticator>
    <time value="20240105101500+0100"/>
    <signatureCode code="S"/>
    <assignedEntity>
      <id root="1.2.250.1.71.4.2.1" extension="899700366240"/>
      <assignedPerson><name><given>Alex</given><family>SOIGNANT</family></name></assignedPerson>
    </assignedEntity>
  </legalAuthenticator>
  <documentationOf>
    <serviceEvent>
      <effectiveTime><low value="20240105100000+0100"/></effectiveTime>
      <performer typeCode="PRF">
        <assignedEntity>
          <id root="1.2.250.1.71.4.2.1" extension="899700366240"/>
          <representedOrganization>
            <id root="1.2.250.1.71.4.2.2" extension="499700366240007"/>
            <standardIndustryClassCode code="AMBULATOIRE" displayName="Ambulatoire"
              codeSystem="1.2.250.1.213.1.1.4.9"/>
          </representedOrganization>
        </assignedEntity>
      </performer>
    </serviceEvent>
  </documentationOf>{related}
  <componentOf>
    <encompassingEncounter>
      <effectiveTime><low value="20240105100000+0100"/></effectiveTime>
      <location>
        <healthCareFacility>
          <code code="SA07" displayName="Cabinet individuel" codeSystem="1.2.250.1.71.4.2.4"/>
        </healthCareFacility>
      </location>
    </encompassingEncounter>
  </componentOf>
  <component>
    <nonXMLBody>
      <text mediaType="application/pdf" representation="B64">{pdf}</text>
    </nonXMLBody>
  </component>
</ClinicalDocument>
"""


RELATED = """
  <relatedDocument typeCode="RPLC"><parentDocument><id root="{parent}"/></parentDocument>
  </relatedDocument>"""


def cda_n1(*, doc_uid: str, ins: str, ins_oid: str, set_id: str | None = None, version: int = 1,
           parent: str | None = None, edit: Callable[[etree._Element], None] | None = None,
           ) -> bytes:
    """The CDA bytes for one document; `edit` changes the parsed document before writing."""
    pdf = base64.b64encode(TINY_PDF).decode("ascii")
    related = RELATED.format(parent=parent) if parent else ""
    text = CDA_N1.format(doc_uid=doc_uid, ins=ins, ins_oid=ins_oid, pdf=pdf, related=related,
                         set_id=set_id or f"{doc_uid}.1", version=version).encode("utf-8")
    if edit is None:
        return text
    root = etree.fromstring(text)
    edit(root)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
