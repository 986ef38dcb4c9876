"""Builders of HL7 v2 test messages: the ANS samples, and our own nurse MDM^T02 with a real PDF.

`nurse_mdm()` is the reference fixture: MDM^T02 2.6, a one-page PDF in OBX ED base64, a valid
test INS (279035121518989, OID 1.2.250.1.213.1.4.10) with PID-32 QUAL, a PRT SB with a nurse's
RPPS, profession and structure, and MetaDMPMSS flags. Tests change one segment at a time with
`replace_segment` / `with_field` and encode with `encode`.
"""

from __future__ import annotations

import base64
from pathlib import Path

from service.sample_pdf import make_pdf

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
HL7_DIR = FIXTURES / "hl7"
ANS_DIR = FIXTURES / "ans"

PDF = make_pdf(["Compte rendu de soins infirmiers", "Pansement, 21/11/2026"])
INS = "279035121518989"
INS_OID = "1.2.250.1.213.1.4.10"
RPPS = "10101010101"


def sample(name: str) -> bytes:
    return (HL7_DIR / name).read_bytes()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def seg(name: str, fields: dict[int, str]) -> str:
    """A segment from {field number: raw value} (MSH: number as in HL7, from 3)."""
    last = max(fields)
    if name == "MSH":
        values = ["^~\\&"] + [fields.get(n, "") for n in range(3, last + 1)]
    else:
        values = [fields.get(n, "") for n in range(1, last + 1)]
    return "|".join([name, *values])


def msh(control_id: str = "MSG0001", *, type_: str = "MDM^T02^MDM_T02", version: str = "2.6",
        charset: str = "UNICODE UTF-8", accept_ack: str = "", processing: str = "P") -> str:
    return seg("MSH", {3: "LOGICIEL-IDE", 4: "Cabinet des Lilas", 5: "DMP-BRIDGE",
                       6: "Cabinet des Lilas", 7: "20261121093000", 9: type_, 10: control_id,
                       11: processing, 12: version, 15: accept_ack, 17: "FRA", 18: charset,
                       21: "2.1^CISIS_CDA_HL7_V2"})


def pid(*, status: str = "QUAL", ids: str | None = None) -> str:
    ins = f"{INS}^^^ASIP-SANTE-INS-NIR&{INS_OID}&ISO^INS^^20101207"
    return seg("PID", {
        3: ids if ids is not None else f"{ins}~000123^^^CAB-LILAS&1.2.250.1.999&ISO^PI",
        5: "PAT-TROIS^DOMINIQUE^DOMINIQUE MARIE-LOUISE^^^^L~ÉPOUSE-TROIS^DOMINIQUE^^^^^D",
        7: "19790328", 8: "F",
        11: "12 rue des Lilas^^RENNES^^35000^FRA^H~^^^^^^BDL^^51215",
        32: status,
    })


def doc_obx(payload: bytes | str = PDF, *, status: str = "F", code: str = "11506-3") -> str:
    data = payload if isinstance(payload, str) else b64(payload)
    return seg("OBX", {1: "1", 2: "ED", 3: f"{code}^CR de soins infirmiers^LN",
                       5: f"^application^pdf^Base64^{data}", 11: status})


PRT_SB = seg("PRT", {
    2: "UC", 4: "SB^^participation",
    5: f"8{RPPS}^SOIGNANTE^Hélène^^^^^^ASIP-SANTE-PS&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS",
    6: "G15_60^Infirmier^JDV_J01",
    8: "Cabinet infirmier des Lilas^^^^^ASIP-SANTE-ST&1.2.250.1.71.4.2.2&ISO^IDNST^^^"
       "499700366240007",
})


def flag(n: int, code: str, answer: str) -> str:
    return seg("OBX", {1: str(n), 2: "CWE", 3: f"{code}^{code}^MetaDMPMSS",
                       5: f"{answer}^^expandedYes-NoIndicator", 11: "F"})


def nurse_mdm(control_id: str = "MSG0001", **msh_options: str) -> list[str]:
    """The segments of the reference MDM^T02 (strings, CR-joined by `encode`)."""
    return [
        msh(control_id, **msh_options),
        seg("EVN", {2: "20261121093000"}),
        pid(),
        seg("PV1", {1: "1", 2: "O"}),
        seg("ORC", {1: "NW"}),
        seg("OBR", {1: "1", 4: "11506-3^CR de soins infirmiers^LN", 7: "20261121093000"}),
        seg("TXA", {1: "1", 2: "11506-3", 3: "TEXT", 4: "20261121093000",
                    12: "1.2.250.1.999.1.42", 17: "AU"}),
        doc_obx(),
        PRT_SB,
        flag(2, "MASQUE_PS", "N"),
        flag(3, "INVISIBLE_PATIENT", "Y"),
        flag(4, "DESTDMP", "Y"),
    ]


def replace_segment(segments: list[str], name: str, new: str | None, nth: int = 1) -> list[str]:
    """Replace (or remove, with None) the nth segment called `name`."""
    out, seen = [], 0
    for segment in segments:
        if segment.split("|", 1)[0] == name:
            seen += 1
            if seen == nth:
                if new is not None:
                    out.append(new)
                continue
        out.append(segment)
    return out


def encode(segments: list[str], encoding: str = "utf-8", sep: str = "\r") -> bytes:
    return (sep.join(segments) + sep).encode(encoding)


def with_obx5(message: bytes, payload: bytes) -> bytes:
    """An ANS sample with its first OBX-5 data replaced by `payload` in base64."""
    lines = message.split(b"\n")
    for i, line in enumerate(lines):
        if line.startswith(b"OBX|1|ED|"):
            fields = line.split(b"|")
            comps = fields[5].split(b"^")
            comps[4] = b64(payload).encode()
            fields[5] = b"^".join(comps)
            lines[i] = b"|".join(fields)
            break
    return b"\n".join(lines)


def zfa(feeding: str = "IO", consultation: str = "INC", *, day: str = "20261121090000",
        status: str = "ACTIF") -> str:
    """A PAM-FR `ZFA` (DMP status): ZFA-1/2 status, ZFA-9/10 feeding, ZFA-11/12 consultation."""
    return seg("ZFA", {1: status, 2: day, 9: feeding, 10: day if feeding else "",
                       11: consultation, 12: day if consultation else ""})


def adt(control_id: str = "ADT-1", *, event: str = "A31", zfa_segment: str | None = None,
        status: str = "QUAL", ids: str | None = None) -> list[str]:
    """A PAM-FR 2.11 ADT from the practice's identity manager, opposed to feeding by default."""
    header = seg("MSH", {3: "GAM-CABINET", 4: "Cabinet des Lilas", 5: "DMP-BRIDGE",
                         6: "Cabinet des Lilas", 7: "20261121093000",
                         9: f"ADT^{event}^ADT_A01", 10: control_id, 11: "P",
                         12: "2.5^FRA^2.11", 17: "FRA", 18: "UNICODE UTF-8",
                         21: "2.11^IHE_FRANCE-2.11-PAM"})
    return [header, seg("EVN", {2: "20261121093000"}), pid(status=status, ids=ids),
            seg("PV1", {1: "1", 2: "N"}), zfa_segment if zfa_segment is not None else zfa()]
