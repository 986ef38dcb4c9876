"""The JSON sidecar that comes with a PDF in an export folder: `NAME.pdf` + `NAME.json`.

Format (keys in English, values as the practice software has them):

    {
      "patient": {"ins": "279035121518989", "ins_oid": "1.2.250.1.213.1.4.10",
                  "identity_status": "QUAL", "birth_family_name": "DUPONT",
                  "given_names": ["Marie", "Louise"], "used_family_name": null,
                  "birth_date": "1979-03-28", "sex": "F", "birthplace_code": "51215"},
      "document": {"kind": "CR soins infirmiers", "title": "Soins du 21/11",
                   "date": "2026-11-21T09:30:00+01:00", "body_format": "pdf"},
      "author": {"rpps": "10101010101", "family_name": "MARTIN", "given_name": "Claire",
                 "profession": "60", "specialty": null, "structure_id": "499700366240007",
                 "structure_name": "Cabinet infirmier des Lilas", "sector": "SA07"}
    }

`document.body_format` says what the payload is: "pdf" (the default) or "text", a plain text in
UTF-8 (an HPRIM Net letter without PDF), which the CDA N1 carries as a text/plain body
(bridge.cda) with the formatCode of a text body (bridge.classify).

pydantic checks the shape at this border; every problem becomes one French sentence that names
the key, says what is wrong and what to do.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from bridge.domain import OID_SECTOR, Author, IdentityStatus, Patient, Sex
from bridge.errors import IntakeRejected
from bridge.ins import parse_ins
from mappings.professions import default_specialty
from mappings.valuesets import VS, load_value_set

MAX_SIDECAR_BYTES = 64 * 1024

# What the job's payload is: a PDF, or a plain text in UTF-8 (bridge.cda wraps either in an N1).
BodyFormat = Literal["pdf", "text"]

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PatientIn(_Strict):
    ins: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20)]
    ins_oid: str
    identity_status: Literal["PROV", "RECUP", "VALI", "QUAL"]
    birth_family_name: Name
    given_names: list[Name] = Field(min_length=1, max_length=10)
    used_family_name: Name | None = None
    birth_date: dt.date
    sex: Literal["F", "M", "U"]
    # INSEE code of the birthplace (99xxx abroad): one of the INS traits the CDA must carry.
    birthplace_code: Annotated[str, StringConstraints(pattern=r"^[0-9][0-9AB][0-9]{3}$")]
    # The patient's choices about their DMP, as recorded by the practice (optional).
    feeding_opposition: bool | None = None
    consultation_consent_date: dt.date | None = None


class DocumentIn(_Strict):
    kind: str
    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    date: dt.datetime
    # The professional wants to see the patient before the document is shared (e.g. bad news).
    confirm_with_patient: bool = False
    # Restrictions the professional asks for (TRE_A07), on top of what the matrix row sets.
    visibility: list[Literal["MASQUE_PS", "INVISIBLE_PATIENT",
                             "INVISIBLE_REPRESENTANTS_LEGAUX"]] = Field(default_factory=list)
    body_format: BodyFormat = "pdf"


class AuthorIn(_Strict):
    rpps: Annotated[str, StringConstraints(pattern=r"^[0-9]{11}$")]
    family_name: Name
    given_name: Name
    profession: str
    specialty: str | None = None
    structure_id: Annotated[str, StringConstraints(pattern=r"^[0-9A-Z]{5,30}$")]
    structure_name: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)
    ]
    sector: str = "SA07"


class SidecarIn(_Strict):
    patient: PatientIn
    document: DocumentIn
    author: AuthorIn


@dataclass(frozen=True)
class DocumentRequest:
    """What the source asks for: send this PDF (or this text, `body_format` "text"), of this
    kind, for this patient, by this author."""

    patient: Patient
    author: Author
    kind: str
    title: str
    date: dt.datetime
    confirm_with_patient: bool = False
    visibility: tuple[str, ...] = ()
    feeding_opposition: bool | None = None
    consultation_consent_date: dt.date | None = None
    body_format: BodyFormat = "pdf"


# Years a document date may have: anything else is an export error (and year 1 or 9999 with a
# time-zone offset cannot even be converted to UTC).
PLAUSIBLE_YEARS = (1900, 2200)

_FIELD_FR = {
    "patient": "patient",
    "document": "document",
    "author": "auteur",
    "ins": "INS",
    "ins_oid": "OID de l'INS",
    "identity_status": "statut de l'identité",
    "birth_family_name": "nom de naissance",
    "given_names": "prénoms",
    "used_family_name": "nom utilisé",
    "birth_date": "date de naissance",
    "sex": "sexe",
    "birthplace_code": "code du lieu de naissance",
    "kind": "type de document",
    "title": "titre",
    "date": "date du document",
    "rpps": "RPPS",
    "family_name": "nom",
    "given_name": "prénom",
    "profession": "profession",
    "specialty": "spécialité",
    "structure_id": "identifiant de la structure",
    "structure_name": "nom de la structure",
    "sector": "secteur d'activité",
    "feeding_opposition": "opposition à l'alimentation du DMP",
    "consultation_consent_date": "date du consentement à la consultation",
    "confirm_with_patient": "à confirmer avec le patient",
    "visibility": "restrictions de visibilité",
    "body_format": "format du contenu (pdf ou text)",
}


# What to say for each kind of pydantic problem (the key and its French label come first).
_PROBLEMS_FR = {
    "missing": "est manquant : ajoutez-le",
    "string_pattern_mismatch": "n'a pas le format attendu : corrigez-le",
    "string_too_short": "est vide : renseignez-le",
    "too_short": "est vide : renseignez-le",
    "string_too_long": "est trop long",
    "too_long": "est trop long",
    "string_type": "n'a pas le bon type de valeur",
    "list_type": "doit être une liste",
    "dict_type": "doit être un objet JSON",
    "model_type": "doit être un objet JSON",
}


# The expected format of the fields checked by a pattern.
_FORMATS_FR = {
    "rpps": "11 chiffres (numéro RPPS)",
    "structure_id": "l'identifiant national de la structure (chiffres et lettres majuscules)",
    "birthplace_code": "le code INSEE de la commune de naissance, 5 caractères "
    "(99xxx à l'étranger)",
}


def _problem_fr(error: dict[str, object]) -> str:
    loc = error.get("loc", ())
    parts = loc if isinstance(loc, tuple) else (loc,)
    if not parts:
        return "la fiche doit être un objet JSON { \"patient\": …, \"document\": …, \"author\": … }"
    path = ".".join(str(p) for p in parts)
    label = " ".join(_FIELD_FR.get(str(p), str(p)) for p in parts)
    kind = str(error.get("type", ""))
    if kind == "extra_forbidden":
        return f"« {path} » n'est pas une clé connue : vérifiez son orthographe ou retirez-la"
    if kind == "literal_error":
        expected = str(error.get("msg", "")).replace("Input should be", "valeurs permises :")
        detail = f"a une valeur inattendue ; {expected.replace(' or ', ' ou ')}"
    elif kind.startswith(("date", "datetime")):
        detail = "n'est pas une date valide : format attendu AAAA-MM-JJ"
    elif kind == "string_pattern_mismatch" and str(parts[-1]) in _FORMATS_FR:
        detail = f"n'a pas le format attendu : {_FORMATS_FR[str(parts[-1])]}"
    else:
        detail = _PROBLEMS_FR.get(kind, "est invalide")
    return f"« {path} » ({label}) {detail}"


def _reject(message: str, code: str, event: str) -> IntakeRejected:
    return IntakeRejected(message, code=code, event=event)


# What XML 1.0 cannot carry (its Char production): C0 controls but tab, LF and CR, lone
# surrogates (a JSON "\ud800" escape), U+FFFE and U+FFFF. Every text of a sidecar may end up in
# the CDA or the XDS metadata.
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _not_xml_text(value: object, path: str = "") -> tuple[str, int] | None:
    """The dotted key of the first text holding a character XML cannot carry, and that
    character's code point; None if there is none. `value` is parsed JSON (64 KiB at most)."""
    if isinstance(value, str):
        found = _NOT_XML_CHAR.search(value)
        return None if found is None else (path or "(fiche)", ord(found.group()))
    items = (value.items() if isinstance(value, dict)
             else enumerate(value) if isinstance(value, list) else ())
    for key, item in items:
        where = _not_xml_text(item, f"{path}.{key}" if path else str(key))
        if where is not None:
            return where
    return None


def parse_sidecar(data: bytes, *, file_name: str) -> DocumentRequest:
    """Turn sidecar bytes into a DocumentRequest, or raise a rejection that says what to fix."""
    if len(data) > MAX_SIDECAR_BYTES:
        raise _reject(
            f"Le fichier {file_name} dépasse {MAX_SIDECAR_BYTES // 1024} Ko, la taille maximale "
            "d'une fiche de métadonnées : il ne contient probablement pas une fiche JSON. "
            "Vérifiez le fichier exporté par le logiciel.",
            "SIDECAR_TOO_LARGE",
            "sidecar_too_large",
        )
    try:
        raw = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = (
            f" (ligne {exc.lineno}, colonne {exc.colno})"
            if isinstance(exc, json.JSONDecodeError)
            else ""
        )
        raise _reject(
            f"Le fichier {file_name} n'est pas un JSON valide en UTF-8{where}. "
            "Corrigez-le ou réexportez-le depuis le logiciel.",
            "SIDECAR_JSON",
            "sidecar_json_invalid",
        ) from None
    except ValueError:  # an integer of more than 4300 digits (Python's conversion limit)
        raise _reject(
            f"Le fichier {file_name} contient un nombre bien trop long pour une fiche de "
            "métadonnées : ce n'est pas une fiche exportée par le logiciel. Vérifiez le "
            "fichier, ou réexportez-le depuis le logiciel.",
            "SIDECAR_JSON",
            "sidecar_json_number_too_long",
        ) from None
    except RecursionError:  # "[[[[…" within the size limit: deeper than Python's parser goes
        raise _reject(
            f"Le fichier {file_name} contient des données imbriquées bien trop profondément "
            "pour une fiche de métadonnées : ce n'est pas une fiche exportée par le logiciel. "
            "Vérifiez le fichier, ou réexportez-le depuis le logiciel.",
            "SIDECAR_JSON",
            "sidecar_json_too_deep",
        ) from None
    bad_text = _not_xml_text(raw)
    if bad_text is not None:
        path, char = bad_text
        raise _reject(
            f"Le champ « {path} » de {file_name} contient un caractère (U+{char:04X})"
            " qu'un document du DMP ne peut pas porter : corrigez-le dans le logiciel, puis "
            "réexportez la fiche.",
            "SIDECAR_INVALID",
            "sidecar_control_character",
        )
    try:
        sidecar = SidecarIn.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(_problem_fr(dict(e)) for e in exc.errors()[:5])
        raise _reject(
            f"Le fichier {file_name} est incomplet ou invalide : {problems}.",
            "SIDECAR_INVALID",
            "sidecar_invalid",
        ) from None
    return _to_request(sidecar, file_name)


def _to_request(s: SidecarIn, file_name: str) -> DocumentRequest:
    ins = parse_ins(s.patient.ins, s.patient.ins_oid)
    # The kind is the practice software's own label (or a typeCode): the feeding matrix, not
    # the sidecar, decides whether it is known (bridge.classify).
    kind = " ".join(s.document.kind.split())
    if not kind:
        raise _reject(f"Le type de document est vide dans {file_name} : indiquez-le.",
                      "KIND_MISSING", "document_kind_missing")
    if s.document.date.tzinfo is None:
        raise _reject(
            f"La date du document dans {file_name} doit préciser le fuseau horaire "
            "(par exemple 2026-11-21T09:30:00+01:00).",
            "DATE_NO_TZ",
            "date_without_tz",
        )
    if not PLAUSIBLE_YEARS[0] <= s.document.date.year <= PLAUSIBLE_YEARS[1]:
        raise _reject(
            f"La date du document dans {file_name} ({s.document.date.year}) n'est pas "
            "plausible : corrigez la date dans le logiciel, puis réexportez la fiche.",
            "DATE_IMPLAUSIBLE",
            "date_implausible",
        )
    profession = load_value_set(VS.PROFESSION).get(s.author.profession)
    if profession is None:
        raise _reject(
            f"La profession « {s.author.profession} » de l'auteur dans {file_name} "
            "n'est pas reconnue (codes TRE_G15 : 10 médecin, 21 pharmacien, "
            "60 infirmier, 70 masseur-kinésithérapeute…).",
            "PROFESSION_UNKNOWN",
            "profession_unknown",
        )
    specialty_code = s.author.specialty or default_specialty(profession.code)
    specialty = load_value_set(VS.AUTHOR_SPECIALTY).get(specialty_code)
    prefix = f"G15_{profession.code}"
    if specialty is None or specialty_code.partition("/")[0] != prefix:
        raise _reject(
            f"La spécialité « {specialty_code} » ne correspond pas à la profession "
            f"{profession.display} dans {file_name}. Attendu : un code du jeu de valeurs "
            f"JDV_J01 commençant par {prefix} (par exemple {default_specialty(profession.code)})"
            " ; corrigez « author.specialty » ou laissez-la vide pour la spécialité par défaut.",
            "SPECIALTY_UNKNOWN",
            "specialty_unknown",
        )
    sector = load_value_set(VS.FACILITY_TYPE).get(s.author.sector, OID_SECTOR)
    if sector is None:
        raise _reject(
            f"Le secteur d'activité « {s.author.sector} » dans {file_name} n'est pas "
            "reconnu : attendu un code SAxx du jeu de valeurs JDV_J02 (par exemple SA07 "
            "cabinet individuel, SA08 cabinet de groupe, SA33 officine).",
            "SECTOR_UNKNOWN",
            "sector_unknown",
        )
    patient = Patient(
        ins=ins,
        identity_status=IdentityStatus(s.patient.identity_status),
        birth_family_name=s.patient.birth_family_name.upper(),
        given_names=tuple(s.patient.given_names),
        birth_date=s.patient.birth_date,
        sex=Sex(s.patient.sex),
        used_family_name=s.patient.used_family_name,
        birthplace_code=s.patient.birthplace_code,
    )
    author = Author(
        rpps=s.author.rpps,
        family_name=s.author.family_name.upper(),
        given_name=s.author.given_name,
        profession_code=profession.code,
        specialty_code=specialty.code,
        specialty_display=specialty.display,
        structure_id=s.author.structure_id,
        structure_name=s.author.structure_name,
        sector_code=s.author.sector,
    )
    return DocumentRequest(
        patient=patient,
        author=author,
        kind=kind,
        title=" ".join(s.document.title.split()),  # as HL7 reads titles: one space
        date=s.document.date,
        confirm_with_patient=s.document.confirm_with_patient,
        visibility=tuple(dict.fromkeys(s.document.visibility)),
        feeding_opposition=s.patient.feeding_opposition,
        consultation_consent_date=s.patient.consultation_consent_date,
        body_format=s.document.body_format,
    )
