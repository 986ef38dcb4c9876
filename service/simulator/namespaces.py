"""XML namespaces and protocol constants the simulator reads on the wire (spec §2–§4)."""

from __future__ import annotations

SOAP = "http://www.w3.org/2003/05/soap-envelope"
WSA = "http://www.w3.org/2005/08/addressing"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
DS = "http://www.w3.org/2000/09/xmldsig#"
XADES111 = "http://uri.etsi.org/01903/v1.1.1#"
XADES132 = "http://uri.etsi.org/01903/v1.3.2#"
XOP = "http://www.w3.org/2004/08/xop/include"
XDSB = "urn:ihe:iti:xds-b:2007"
LCM = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
QUERY = "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"
HL7 = "urn:hl7-org:v3"
XSI = "http://www.w3.org/2001/XMLSchema-instance"

NS = {
    "soap": SOAP, "wsa": WSA, "wsse": WSSE, "saml": SAML, "ds": DS, "xop": XOP,
    "xdsb": XDSB, "lcm": LCM, "rim": RIM, "rs": RS, "query": QUERY, "hl7": HL7,
}

ACTION_ITI41 = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
ACTION_ITI41_RESPONSE = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-bResponse"
ACTION_ITI18 = "urn:ihe:iti:2007:RegistryStoredQuery"
ACTION_ITI18_RESPONSE = "urn:ihe:iti:2007:RegistryStoredQueryResponse"
ACTION_ITI57 = "urn:ihe:iti:2010:UpdateDocumentSet"
ACTION_ITI57_RESPONSE = "urn:ihe:iti:2010:UpdateDocumentSetResponse"
ACTION_TD02 = "urn:hl7-org:v3:PRPA_IN201307UV02"
ACTION_TD02_RESPONSE = "urn:hl7-org:v3:PRPA_IN201310UV02"
ACTION_FAULT = "http://www.w3.org/2005/08/addressing/soap/fault"

STATUS_SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
STATUS_FAILURE = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"
SEVERITY_ERROR = "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Error"
STATUS_APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
STATUS_DEPRECATED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated"
STATUS_ARCHIVED = "urn:asip:ci-sis:2010:StatusType:Archived"
STATUS_DELETED = "urn:asip:ci-sis:2010:StatusType:Deleted"

# ebRIM / XDS UUIDs (IHE ITI TF-3 §4.2; spec §3).
SUBMISSION_SET_NODE = "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"
DOCUMENT_ENTRY_TYPE = "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"
HAS_MEMBER = "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"
SIGNS = "urn:ihe:iti:2007:AssociationType:signs"
RPLC = "urn:ihe:iti:2007:AssociationType:RPLC"
UPDATE_AVAILABILITY = "urn:ihe:iti:2010:AssociationType:UpdateAvailabilityStatus"
DE_PATIENT_ID = "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427"
DE_UNIQUE_ID = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"
SS_PATIENT_ID = "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446"
SS_UNIQUE_ID = "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8"
SS_SOURCE_ID = "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832"
DE_CLASS_CODE = "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a"
DE_TYPE_CODE = "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983"
DE_FORMAT_CODE = "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d"
DE_CONFIDENTIALITY = "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f"
DE_FACILITY_TYPE = "urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1"
DE_PRACTICE_SETTING = "urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead"
DE_AUTHOR = "urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d"
SS_AUTHOR = "urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d"
SS_CONTENT_TYPE = "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500"

SIGNATURE_FORMATS = frozenset(
    {"http://www.w3.org/2000/09/xmldsig#", "urn:ihe:iti:dsg:detached:2014"}
)
INS_OIDS = frozenset(
    {"1.2.250.1.213.1.4.8", "1.2.250.1.213.1.4.9", "1.2.250.1.213.1.4.10", "1.2.250.1.213.1.4.11"}
)
OID_PS_IDNAT = "1.2.250.1.71.4.2.1"
OID_STRUCT_IDNAT = "1.2.250.1.71.4.2.2"


def q(ns: str, local: str) -> str:
    """Clark notation `{ns}local`."""
    return f"{{{ns}}}{local}"
