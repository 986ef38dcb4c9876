"""HL7 v2 intake (ANS profile CISIS_CDA_HL7_V2): MLLP framing, parsing, mapping, ACKs; PAM-FR
ADT (patient's DMP choices, segment ZFA); business acknowledgments ZAM^Z01.

Pure: bytes in, values and bytes out. The socket server is connectors/mllp_server.py.
"""

from bridge.hl7v2.ack import ack_code, ack_wanted, build_ack
from bridge.hl7v2.adt import PatientUpdate, RegistryChanges, parse_adt
from bridge.hl7v2.errors import AckCode, AppCode, ErrorCode, HL7Rejected, Location
from bridge.hl7v2.header import MessageHeader, idempotency_key, read_header, source_ref
from bridge.hl7v2.message import Action, HL7Document, parse_message
from bridge.hl7v2.mllp import BrokenFrame, Frame, MllpDecoder, frame, split_frames
from bridge.hl7v2.zam import ZamOutcome, ZamRequest, build_zam, zam_request, zam_requested

__all__ = [
    "AckCode",
    "Action",
    "AppCode",
    "BrokenFrame",
    "ErrorCode",
    "Frame",
    "HL7Document",
    "HL7Rejected",
    "Location",
    "MessageHeader",
    "MllpDecoder",
    "PatientUpdate",
    "RegistryChanges",
    "ZamOutcome",
    "ZamRequest",
    "ack_code",
    "ack_wanted",
    "build_ack",
    "build_zam",
    "frame",
    "idempotency_key",
    "parse_adt",
    "parse_message",
    "read_header",
    "source_ref",
    "split_frames",
    "zam_request",
    "zam_requested",
]
