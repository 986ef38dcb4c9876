"""Who holds a CPS card, read from what the card exposes (spec/card-auth.md A3, A4).

Pure decoding; the bytes come from the PKCS#11 module (Cryptolib CPS in production: the
certificates, and the data objects `CPS_INFO_PS`, `CPS_NAME_PS`, `CPS_ACTIVITY_01_PS`…) or, in
tests, from the project's emulated card. What is CONFIRMED and what is INFERRED:

- the holder's national id (PS_IdNat, `8` + RPPS for a professional), family and given names are
  in the certificate subject (CN, SN, GN) — INFERRED [dehempe];
- the speciality is the last 4 characters of `CPS_INFO_PS` — CONFIRMED as what the GIE
  SESAM-Vitale sample does; the card kind and profession before it are OUR layout (INFERRED):
  ASCII ``<kind, 3 letters><profession, 2 digits>…<speciality, 4 characters>``, ``0000`` for none;
- a "situation d'exercice" is the TLV ``EE { 84 name, 85 Struct_IdNat, 86 sector }`` — INFERRED.

A real card may differ: these three functions are the only places to correct, and
`dmp-bridge card show` prints what was decoded so a practice can check it with a real card.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from bridge.domain import Author
from bridge.errors import BridgeError
from mappings.professions import default_specialty

NO_SPECIALTY = "0000"
_RPPS_ID = re.compile(r"8\d{11}")
_SECTOR = re.compile(r"SA\d{2}")
_STRUCTURE_ID = re.compile(r"[0-9A-Z]{2,40}")
_TAG_SITUATION, _TAG_NAME, _TAG_STRUCTURE, _TAG_SECTOR = 0xEE, 0x84, 0x85, 0x86


class CardKind(StrEnum):
    """Kind of CPx card (IGC Santé): only a professional's card may feed clinical documents."""

    CPS = "CPS"  # carte de professionnel de santé
    CPF = "CPF"  # carte de professionnel en formation (student)
    CPE = "CPE"  # carte de personnel d'établissement (secretary, administration)
    CDE = "CDE"  # carte de directeur d'établissement


class CardDataInvalid(BridgeError):
    """What the card exposes cannot be decoded (an unknown card, a damaged file)."""

    code = "CARD_DATA_INVALID"
    event = "card_data_invalid"


class CardRefused(BridgeError):
    """The card is readable but may not feed the DMP (a staff card, no situation)."""

    code = "CARD_REFUSED"
    event = "card_refused"


@dataclass(frozen=True)
class Situation:
    """One "situation d'exercice": where and in which sector the holder works."""

    index: int  # 1 … 16, the number of the card file / data object
    structure_id: str  # Struct_IdNat
    structure_name: str
    sector_code: str  # TRE_R02, e.g. SA07

    def label(self) -> str:
        """How the user sees it when asked to choose."""
        return f"{self.index}. {self.structure_name} ({self.structure_id}, {self.sector_code})"


@dataclass(frozen=True)
class CardHolder:
    """The card's holder as the certificate and `CPS_INFO_PS` describe them (public data)."""

    national_id: str  # PS_IdNat, e.g. "899700366240"
    family_name: str
    given_name: str
    kind: CardKind
    profession_code: str  # TRE_G15, "" when the card has none (staff cards)
    specialty_code: str | None  # TRE_R01 / G05 code of the card, None when "0000"

    @property
    def rpps(self) -> str | None:
        """The 11-digit RPPS of a professional identified by RPPS, else None."""
        return self.national_id[1:] if _RPPS_ID.fullmatch(self.national_id) else None

    def check_may_feed(self) -> None:
        """Refuse a card that may not send clinical documents, saying what to do instead."""
        if self.kind is CardKind.CPE or self.kind is CardKind.CDE:
            raise CardRefused(
                "Cette carte est une carte de personnel d'établissement "
                f"({self.kind.value}) : elle ne permet pas d'alimenter le DMP avec des "
                "documents de soins. Insérez la carte CPS du professionnel auteur des "
                "documents, ou configurez les certificats de la structure (mode établissement)."
            )
        if self.rpps is None:
            raise CardRefused(
                "Cette carte ne porte pas d'identifiant RPPS : le DMP ne l'accepte pas pour "
                "l'alimentation. Insérez une carte CPS identifiée au RPPS."
            )


def parse_info_ps(info_ps: bytes) -> tuple[CardKind, str, str | None]:
    """(kind, TRE_G15 profession, speciality or None) from `CPS_INFO_PS` (layout above)."""
    try:
        text = info_ps.decode("ascii").strip()
    except UnicodeDecodeError:
        raise CardDataInvalid(
            "Les informations de la carte (CPS_INFO_PS) ne sont pas lisibles : la carte n'est "
            "peut-être pas une carte CPS."
        ) from None
    try:
        kind = CardKind(text[:3])
    except ValueError:
        raise CardDataInvalid(
            f"Type de carte inconnu « {text[:3]} » dans CPS_INFO_PS : la carte n'est "
            "peut-être pas une carte CPS."
        ) from None
    profession = text[3:5]
    if len(text) < 9 or not (profession.isdigit() or profession == "  "):
        raise CardDataInvalid("Les informations de la carte (CPS_INFO_PS) sont incomplètes.")
    specialty = text[-4:]
    return kind, profession.strip(), None if specialty == NO_SPECIALTY else specialty


def _read_tlv(data: bytes, pos: int) -> tuple[int, bytes, int]:
    """(tag, value, next position) of the BER-TLV (one-byte tag) at `pos`."""
    if pos + 2 > len(data):
        raise CardDataInvalid("Situation d'exercice tronquée sur la carte.")
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if count not in (1, 2) or pos + count > len(data):
            raise CardDataInvalid("Longueur illisible dans une situation d'exercice.")
        length = int.from_bytes(data[pos:pos + count], "big")
        pos += count
    if pos + length > len(data):
        raise CardDataInvalid("Situation d'exercice tronquée sur la carte.")
    return tag, data[pos:pos + length], pos + length


def parse_situation(index: int, raw: bytes) -> Situation | None:
    """The situation in `CPS_ACTIVITY_<index>_PS`; None for an empty (unused) file."""
    if not raw.strip(b"\x00\xff"):
        return None
    tag, body, _ = _read_tlv(raw, 0)
    if tag != _TAG_SITUATION:
        raise CardDataInvalid(f"La situation d'exercice n° {index} n'a pas le format attendu.")
    fields: dict[int, str] = {}
    pos = 0
    while pos < len(body):
        inner, value, pos = _read_tlv(body, pos)
        try:
            fields[inner] = value.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise CardDataInvalid(
                f"La situation d'exercice n° {index} contient des caractères illisibles."
            ) from None
    structure, sector = fields.get(_TAG_STRUCTURE, ""), fields.get(_TAG_SECTOR, "")
    if not _STRUCTURE_ID.fullmatch(structure) or not _SECTOR.fullmatch(sector):
        raise CardDataInvalid(
            f"La situation d'exercice n° {index} n'indique pas de structure ou de secteur "
            "valide."
        )
    return Situation(index, structure, fields.get(_TAG_NAME, "") or structure, sector)


def encode_situation(situation: Situation) -> bytes:
    """The TLV of `parse_situation` (for test cards and tokens)."""

    def tlv(tag: int, value: bytes) -> bytes:
        if len(value) < 0x80:
            return bytes([tag, len(value)]) + value
        return bytes([tag, 0x82]) + len(value).to_bytes(2, "big") + value

    body = (tlv(_TAG_NAME, situation.structure_name.encode())
            + tlv(_TAG_STRUCTURE, situation.structure_id.encode())
            + tlv(_TAG_SECTOR, situation.sector_code.encode()))
    return tlv(_TAG_SITUATION, body)


def holder_author(holder: CardHolder, situation: Situation, *,
                  specialty_display: str) -> Author:
    """The author the DMP sees when this card feeds from this situation (VIHF, submission set).

    `specialty_display` is the JDV_J01 display of `author_specialty(holder)`, looked up by the
    caller in the value sets.
    """
    holder.check_may_feed()
    rpps = holder.rpps
    assert rpps is not None  # check_may_feed refused the others
    return Author(
        rpps=rpps,
        family_name=holder.family_name,
        given_name=holder.given_name,
        profession_code=holder.profession_code,
        specialty_code=author_specialty(holder),
        specialty_display=specialty_display,
        structure_id=situation.structure_id,
        structure_name=situation.structure_name,
        sector_code=situation.sector_code,
    )


def author_specialty(holder: CardHolder) -> str:
    """JDV_J01 authorSpecialty for the holder: the card's speciality, else the default."""
    if holder.specialty_code:
        return f"G15_{holder.profession_code}/{holder.specialty_code}"
    return default_specialty(holder.profession_code)


def choose_situation(situations: list[Situation], chosen: int | None) -> Situation:
    """The situation to feed from: the only one, or the one the user chose (EX_GEN-1370)."""
    if not situations:
        raise CardRefused(
            "La carte ne porte aucune situation d'exercice : le DMP exige la structure où "
            "vous exercez. Faites mettre à jour votre carte (CPS-Gestion / ANS)."
        )
    if chosen is None:
        if len(situations) == 1:
            return situations[0]
        raise CardRefused(
            "La carte porte plusieurs situations d'exercice ; choisissez celle d'où partent "
            "les documents : " + " ; ".join(s.label() for s in situations)
            + " (dmp-bridge card login --situation N, ou le tableau de bord, page Carte).",
            code="CARD_SITUATION_NEEDED",
        )
    for situation in situations:
        if situation.index == chosen:
            return situation
    raise CardRefused(
        f"La situation d'exercice n° {chosen} n'existe pas sur cette carte ; choix possibles : "
        + " ; ".join(s.label() for s in situations),
        code="CARD_SITUATION_UNKNOWN",
    )
