"""The IHE XDS.b identifiers used in ITI-41 metadata, in one place (spec/dmp-protocol.md §3).

These are the standard IHE ITI TF-3 §4.2.5 UUIDs; a single wrong digit makes the registry ignore
the classification silently, so they are written once here and nowhere else.
"""

from __future__ import annotations

from typing import Final

# Namespaces of the ITI-41 body.
NS_XDSB: Final = "urn:ihe:iti:xds-b:2007"
NS_LCM: Final = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
NS_RIM: Final = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
NS_XOP: Final = "http://www.w3.org/2004/08/xop/include"

# Object types.
DOCUMENT_ENTRY_OBJECT_TYPE: Final = "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"  # stable
SUBMISSION_SET_NODE: Final = "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"  # classificationNode

# SubmissionSet classification schemes and identification schemes.
SS_AUTHOR: Final = "urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d"
SS_CONTENT_TYPE_CODE: Final = "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500"
SS_PATIENT_ID: Final = "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446"
SS_SOURCE_ID: Final = "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832"
SS_UNIQUE_ID: Final = "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8"

# DocumentEntry classification schemes and identification schemes.
DE_AUTHOR: Final = "urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d"
DE_CLASS_CODE: Final = "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a"
DE_CONFIDENTIALITY_CODE: Final = "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f"
DE_EVENT_CODE_LIST: Final = "urn:uuid:2c6b8cb7-8b2a-4051-b291-b1ae6a575ef4"
DE_FORMAT_CODE: Final = "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d"
DE_HEALTHCARE_FACILITY_TYPE_CODE: Final = "urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1"
DE_PRACTICE_SETTING_CODE: Final = "urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead"
DE_TYPE_CODE: Final = "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983"
DE_PATIENT_ID: Final = "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427"
DE_UNIQUE_ID: Final = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"

# Association types and the submission-set status slot.
ASSOC_HAS_MEMBER: Final = "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"
ASSOC_SIGNS: Final = "urn:ihe:iti:2007:AssociationType:signs"
ASSOC_RPLC: Final = "urn:ihe:iti:2007:AssociationType:RPLC"
SUBMISSION_SET_STATUS_ORIGINAL: Final = "Original"

# ITI-57 (Update Document Set) association type and the availability statuses (wire contract).
ASSOC_UPDATE_AVAILABILITY: Final = "urn:ihe:iti:2010:AssociationType:UpdateAvailabilityStatus"
