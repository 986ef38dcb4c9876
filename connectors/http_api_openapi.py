"""The OpenAPI 3.1 description of the local HTTP API, written by hand (served at
`/api/openapi.json`, without the token: it holds no secret and lets integrators discover the API).

The sidecar schema mirrors `bridge.sidecar.SidecarIn`; a test keeps their keys in step.
"""

from __future__ import annotations

import copy
from typing import Any

_REF = "#/components/schemas/"
_RESP = "#/components/responses/"

_NAME = {"type": "string", "minLength": 1, "maxLength": 80}
_NULLABLE_NAME = {"type": ["string", "null"], "minLength": 1, "maxLength": 80}

_SIDECAR_PATIENT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["ins", "ins_oid", "identity_status", "birth_family_name", "given_names",
                 "birth_date", "sex", "birthplace_code"],
    "properties": {
        "ins": {"type": "string", "description": "Matricule INS, 15 caractères (NIR + clé).",
                "maxLength": 20},
        "ins_oid": {"type": "string", "description": "OID de l'INS : …4.8 INS-NIR, …4.9 "
                    "INS-NIA, …4.10 / …4.11 identités de test."},
        "identity_status": {"enum": ["PROV", "RECUP", "VALI", "QUAL"],
                            "description": "Seules les identités QUAL partent au DMP ; les "
                            "autres attendent une action, avec leur motif."},
        "birth_family_name": _NAME,
        "given_names": {"type": "array", "items": _NAME, "minItems": 1, "maxItems": 10},
        "used_family_name": _NULLABLE_NAME,
        "birth_date": {"type": "string", "format": "date"},
        "sex": {"enum": ["F", "M", "U"]},
        "birthplace_code": {"type": "string", "pattern": "^[0-9][0-9AB][0-9]{3}$",
                            "description": "Code INSEE de la commune de naissance (99xxx à "
                            "l'étranger)."},
        "feeding_opposition": {"type": ["boolean", "null"],
                               "description": "Le patient s'oppose à l'alimentation de son DMP."},
        "consultation_consent_date": {"type": ["string", "null"], "format": "date"},
    },
}

_SIDECAR_DOCUMENT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["kind", "title", "date"],
    "properties": {
        "kind": {"type": "string", "description": "Libellé du logiciel, code d'une ligne de la "
                 "matrice d'alimentation (IDE-02) ou typeCode (11506-3)."},
        "title": {"type": "string", "minLength": 1, "maxLength": 200},
        "date": {"type": "string", "format": "date-time",
                 "description": "Avec fuseau horaire (2026-11-21T09:30:00+01:00)."},
        "confirm_with_patient": {"type": "boolean", "default": False},
        "body_format": {"enum": ["pdf", "text"], "default": "pdf",
                        "description": "« text » : le fichier joint est un texte brut UTF-8 "
                        "(lettre sans PDF), envoyé dans un CDA à corps text/plain."},
        "visibility": {
            "type": "array", "uniqueItems": True,
            "description": "Restrictions demandées par le professionnel (TRE_A07), en plus "
                           "de celles de la matrice.",
            "items": {"enum": ["MASQUE_PS", "INVISIBLE_PATIENT",
                               "INVISIBLE_REPRESENTANTS_LEGAUX"]},
        },
    },
}

_SIDECAR_AUTHOR: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["rpps", "family_name", "given_name", "profession", "structure_id",
                 "structure_name"],
    "properties": {
        "rpps": {"type": "string", "pattern": "^[0-9]{11}$"},
        "family_name": _NAME,
        "given_name": _NAME,
        "profession": {"type": "string", "description": "Code TRE_G15 (10 médecin, 21 "
                       "pharmacien, 40 chirurgien-dentiste, 50 sage-femme, 60 infirmier, 70 "
                       "masseur-kinésithérapeute)."},
        "specialty": {"type": ["string", "null"], "description": "Code JDV_J01 (vide : "
                      "spécialité par défaut de la profession)."},
        "structure_id": {"type": "string", "pattern": "^[0-9A-Z]{5,30}$"},
        "structure_name": {"type": "string", "minLength": 1, "maxLength": 120},
        "sector": {"type": "string", "default": "SA07", "description": "Code TRE_R02 / JDV_J02."},
    },
}

_STATE = {
    "type": "string",
    "enum": ["queued", "active", "deferred", "ambiguous", "held", "dead", "corrupt", "done"],
    "description": "État du document dans la file d'attente.",
}

_PROBLEM_EXAMPLE = {
    "type": "urn:dmp-bridge:probleme:PDF_NOT_PDF",
    "title": "Requête refusée",
    "status": 400,
    "detail": "Le fichier « file » n'est pas un PDF (il ne commence pas par « %PDF- »). "
              "Exportez le document au format PDF.",
    "code": "PDF_NOT_PDF",
}


def _problem_response(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": _REF + "Problem"}}},
    }
    if headers:
        response["headers"] = headers
    return response


OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "dmp-bridge — API locale de dépôt de documents",
        "version": "1.0.0",
        "description": (
            "Dépôt d'un PDF et de sa fiche (même format que la fiche JSON du dossier de dépôt) "
            "dans la file d'attente durable de dmp-bridge, qui l'envoie au DMP. L'API n'écoute "
            "que sur la boucle locale ; l'en-tête Host doit désigner 127.0.0.1, localhost ou "
            "[::1] avec le port de l'API. 202 n'est répondu qu'une fois le document enregistré "
            "durablement."
        ),
    },
    "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
    "servers": [{"url": "http://127.0.0.1:{port}", "variables": {"port": {"default": "8787"}}}],
    "security": [{"bearerAuth": []}],
    "paths": {
        "/api/openapi.json": {
            "get": {
                "operationId": "getOpenApi",
                "summary": "Cette description (sans jeton).",
                "security": [],
                "responses": {
                    "200": {"description": "Le document OpenAPI.",
                            "content": {"application/json": {"schema": {"type": "object"}}}},
                    "421": {"$ref": _RESP + "HostRefused"},
                },
            },
        },
        "/api/v1/documents": {
            "post": {
                "operationId": "submitDocument",
                "summary": "Déposer un PDF et sa fiche.",
                "description": (
                    "Le document est vérifié comme une paire du dossier de dépôt (PDF, fiche, "
                    "type de document connu de la matrice d'alimentation pour l'auteur), puis "
                    "enregistré. Même clé Idempotency-Key et même contenu : même réponse, aucun "
                    "doublon ; même clé et autre contenu : 409. Sans clé, le contenu (PDF + "
                    "fiche) sert de clé."
                ),
                "parameters": [{"$ref": "#/components/parameters/IdempotencyKey"}],
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {"$ref": _REF + "MultipartSubmission"},
                            "encoding": {"file": {"contentType": "application/pdf"},
                                         "metadata": {"contentType": "application/json"}},
                        },
                        "application/json": {"schema": {"$ref": _REF + "JsonSubmission"}},
                    },
                },
                "responses": {
                    "202": {
                        "description": "Document enregistré durablement dans la file "
                                       "d'attente (ou déjà reçu avec la même clé).",
                        "headers": {"Location": {"description": "Adresse de suivi du document.",
                                                 "schema": {"type": "string"}}},
                        "content": {"application/json": {
                            "schema": {"$ref": _REF + "DocumentAccepted"}}},
                    },
                    "400": _problem_response("Requête ou document refusé (motif en français).")
                    | {"content": {"application/problem+json": {
                        "schema": {"$ref": _REF + "Problem"}, "example": _PROBLEM_EXAMPLE}}},
                    "401": {"$ref": _RESP + "Unauthorized"},
                    "409": _problem_response("Clé d'idempotence déjà utilisée pour un autre "
                                             "document."),
                    "413": _problem_response("Corps de requête trop volumineux."),
                    "415": _problem_response("Type de contenu non pris en charge."),
                    "421": {"$ref": _RESP + "HostRefused"},
                    "503": _problem_response(
                        "File d'attente indisponible : rien n'a été enregistré, renvoyez.",
                        {"Retry-After": {"description": "Secondes à attendre avant de renvoyer.",
                                         "schema": {"type": "integer"}}}),
                },
            },
        },
        "/api/v1/documents/{id}": {
            "get": {
                "operationId": "getDocument",
                "summary": "État et historique d'un document (sans donnée du patient).",
                "parameters": [{"name": "id", "in": "path", "required": True,
                                "schema": {"type": "integer", "minimum": 1}}],
                "responses": {
                    "200": {"description": "État du document.",
                            "content": {"application/json": {
                                "schema": {"$ref": _REF + "DocumentStatus"}}}},
                    "401": {"$ref": _RESP + "Unauthorized"},
                    "404": _problem_response("Aucun document avec ce numéro."),
                    "421": {"$ref": _RESP + "HostRefused"},
                    "503": _problem_response("File d'attente indisponible.",
                                             {"Retry-After": {"schema": {"type": "integer"}}}),
                },
            },
        },
    },
    "components": {
        "securitySchemes": {
            "bearerAuth": {
                "type": "http",
                "scheme": "bearer",
                "description": "Le jeton du fichier créé par « dmp-bridge init » dans le "
                               "dossier des données (lisible par le compte du service seulement).",
            },
        },
        "parameters": {
            "IdempotencyKey": {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "Clé choisie par le logiciel (un UUID par document) : un renvoi "
                               "avec la même clé ne crée pas de second document.",
                "schema": {"type": "string", "minLength": 1, "maxLength": 255,
                           "pattern": "^[!-~]+$"},
            },
        },
        "responses": {
            "Unauthorized": _problem_response(
                "Jeton absent ou incorrect.",
                {"WWW-Authenticate": {"schema": {"type": "string"}}}),
            "HostRefused": _problem_response("En-tête Host hors de la liste autorisée."),
        },
        "schemas": {
            "Sidecar": {
                "type": "object",
                "description": "La fiche du document, même format que NOM.json du dossier.",
                "additionalProperties": False,
                "required": ["patient", "document", "author"],
                "properties": {
                    "patient": _SIDECAR_PATIENT,
                    "document": _SIDECAR_DOCUMENT,
                    "author": _SIDECAR_AUTHOR,
                },
            },
            "MultipartSubmission": {
                "type": "object",
                "required": ["file", "metadata"],
                "properties": {
                    "file": {"type": "string", "contentMediaType": "application/pdf",
                             "description": "Le PDF."},
                    "metadata": {"$ref": _REF + "Sidecar"},
                },
            },
            "JsonSubmission": {
                "type": "object",
                "additionalProperties": False,
                "required": ["pdf_base64", "metadata"],
                "properties": {
                    "pdf_base64": {"type": "string", "contentEncoding": "base64",
                                   "contentMediaType": "application/pdf"},
                    "metadata": {"$ref": _REF + "Sidecar"},
                },
            },
            "DocumentAccepted": {
                "type": "object",
                "required": ["id", "etat", "libelle", "lien"],
                "properties": {
                    "id": {"type": "integer", "description": "Numéro du document dans la file."},
                    "etat": {"$ref": _REF + "State"},
                    "libelle": {"type": "string", "description": "L'état, en français."},
                    "lien": {"type": "string", "description": "/api/v1/documents/{id}"},
                },
            },
            "DocumentStatus": {
                "type": "object",
                "required": ["id", "etat", "libelle", "canal", "recu_le", "mis_a_jour_le",
                             "tentatives", "prochain_essai", "motif", "historique", "lien"],
                "properties": {
                    "id": {"type": "integer"},
                    "etat": {"$ref": _REF + "State"},
                    "libelle": {"type": "string"},
                    "canal": {"type": "string", "description": "folder, http, mllp…"},
                    "recu_le": {"type": "string", "format": "date-time"},
                    "mis_a_jour_le": {"type": "string", "format": "date-time"},
                    "tentatives": {"type": "integer", "minimum": 0},
                    "prochain_essai": {"type": ["string", "null"], "format": "date-time"},
                    "motif": {"oneOf": [{"$ref": _REF + "Reason"}, {"type": "null"}],
                              "description": "Le dernier motif (refus, attente, nouvel essai)."},
                    "historique": {"type": "array", "items": {"$ref": _REF + "TimelineEvent"}},
                    "lien": {"type": "string"},
                },
            },
            "Reason": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            },
            "TimelineEvent": {
                "type": "object",
                "required": ["date", "de", "vers", "code", "message"],
                "properties": {
                    "date": {"type": "string", "format": "date-time"},
                    "de": {"oneOf": [{"$ref": _REF + "State"}, {"type": "null"}]},
                    "vers": {"$ref": _REF + "State"},
                    "code": {"type": "string"},
                    "message": {"type": "string", "description": "En français."},
                },
            },
            "State": _STATE,
            "Problem": {
                "type": "object",
                "description": "RFC 7807 (application/problem+json), en français.",
                "required": ["type", "title", "status", "detail", "code"],
                "properties": {
                    "type": {"type": "string", "format": "uri"},
                    "title": {"type": "string"},
                    "status": {"type": "integer"},
                    "detail": {"type": "string", "description": "Le motif et quoi faire."},
                    "code": {"type": "string", "description": "Code stable de l'erreur."},
                },
            },
        },
    },
}


def openapi_document(port: int) -> dict[str, Any]:
    """The description, with the server's actual port as the default of its URL."""
    document = copy.deepcopy(OPENAPI)
    document["servers"][0]["variables"]["port"]["default"] = str(port)
    return document
