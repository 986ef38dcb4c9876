"""The one table that says what each DMP error means for a job, with the French message the
user reads — the IHE codes (public, ITI TF-3 §4.2.4.1) and, apart, the invented DMP codes.

The DMP's own error codes are documented only in the non-public DMPi guide. Until they are known,
the simulator emits invented codes (service/simulator/invented_codes.py) and this module maps
each of them; a test checks that every code the simulator can emit has a row here. An unknown
code is permanent and raises an alert: resending blindly could flood the DMP with the same error.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorClass(StrEnum):
    """How a failure is handled (DESIGN.md §4)."""

    TRANSIENT = "transient"  # retry with backoff
    ENVIRONMENT = "environment"  # pause everything, consume no attempt (card, TLS trust, clock)
    AMBIGUOUS = "ambiguous"  # the document may be registered: ask before resending
    NEEDS_PERSON = "needs_person"  # about this patient's DMP: held until a person acts
    PERMANENT = "permanent"  # the DMP will refuse it again: dead, kept for replay


_BUSY = "Le DMP est momentanément surchargé ; nouvel essai automatique."
_INTERNAL = "Erreur interne du DMP ; nouvel essai automatique."
_METADATA = (
    "Le DMP refuse les métadonnées du document. Vérifiez le type de document et "
    "l'auteur, puis relancez l'envoi."
)
_ALTERED = "Le document a été altéré pendant l'envoi ({what}). Contactez le support."
_SUPPORT = "{what} Contactez le support de dmp-bridge."

# IHE codes: (class, French message for the user).
IHE_CODES: dict[str, tuple[ErrorClass, str]] = {
    "XDSRegistryBusy": (ErrorClass.TRANSIENT, _BUSY),
    "XDSRepositoryBusy": (ErrorClass.TRANSIENT, _BUSY),
    "XDSRegistryOutOfResources": (ErrorClass.TRANSIENT, _BUSY),
    "XDSRepositoryOutOfResources": (ErrorClass.TRANSIENT, _BUSY),
    "XDSRegistryError": (ErrorClass.TRANSIENT, _INTERNAL),
    "XDSRepositoryError": (ErrorClass.TRANSIENT, _INTERNAL),
    "XDSDuplicateUniqueIdInRegistry": (
        ErrorClass.AMBIGUOUS,
        "Le DMP connaît déjà ce document : vérification en cours.",
    ),
    "XDSRegistryMetadataError": (ErrorClass.PERMANENT, _METADATA),
    "XDSRepositoryMetadataError": (ErrorClass.PERMANENT, _METADATA),
    "XDSPatientIdDoesNotMatch": (
        ErrorClass.PERMANENT,
        _SUPPORT.format(what="L'identité du patient n'est pas la même partout dans l'envoi."),
    ),
    "XDSUnknownPatientId": (
        ErrorClass.NEEDS_PERSON,
        "Le DMP ne connaît pas de dossier pour ce patient (INS). Vérifiez l'INS dans le "
        "dossier du patient ; s'il est juste, le patient n'a pas (ou plus) de DMP : annulez "
        "l'envoi (dmp-bridge cancel).",
    ),
    "XDSReplaceFailed": (ErrorClass.PERMANENT,
                         "Le document à remplacer n'est plus modifiable dans le DMP (déjà "
                         "remplacé, supprimé, ou d'un autre patient)."),
    "XDSMetadataUpdateError": (ErrorClass.PERMANENT,
                               "Le DMP refuse la modification demandée sur ce document."),
    "XDSMetadataVersionError": (ErrorClass.PERMANENT,
                                "Le document a été modifié entre-temps dans le DMP : relancez "
                                "l'opération."),
    "XDSUnknownStoredQuery": (ErrorClass.PERMANENT, _SUPPORT.format(
        what="Le DMP ne connaît pas la recherche demandée.")),
    "XDSStoredQueryParamNumber": (ErrorClass.PERMANENT, _SUPPORT.format(
        what="Le DMP refuse les paramètres de la recherche.")),
    "XDSTooManyResults": (ErrorClass.PERMANENT, "Trop de résultats : précisez la recherche."),
    "XDSNonIdenticalHash": (ErrorClass.PERMANENT, _ALTERED.format(what="empreinte différente")),
    "XDSNonIdenticalSize": (ErrorClass.PERMANENT, _ALTERED.format(what="taille différente")),
    "XDSMissingDocument": (
        ErrorClass.PERMANENT,
        _SUPPORT.format(what="Un document annoncé manque dans l'envoi."),
    ),
    "XDSMissingDocumentMetadata": (
        ErrorClass.PERMANENT,
        _SUPPORT.format(what="Un document de l'envoi n'a pas de métadonnées."),
    ),
    "XDSDocumentUniqueIdError": (
        ErrorClass.PERMANENT,
        _SUPPORT.format(what="L'identifiant du document est refusé par le DMP."),
    ),
}



# INVENTED codes: what our simulator answers where IHE names nothing. NOT the real DMP codes;
# replace them as soon as the DMPi list is known.
INVENTED_DMP_CODES: dict[str, tuple[ErrorClass, str]] = {
    "DMP_TLS_CERTIFICAT": (ErrorClass.ENVIRONMENT,
                           "Le DMP refuse le certificat d'authentification de la structure. "
                           "Vérifiez le certificat ORG AUTH_CLI (validité, autorité) ; les envois "
                           "reprendront d'eux-mêmes une fois corrigé."),
    "DMP_VIHF_HORODATAGE": (ErrorClass.ENVIRONMENT,
                            "Le DMP refuse l'heure du jeton d'authentification : l'horloge de ce "
                            "PC est probablement fausse. Remettez-la à l'heure (synchronisation "
                            "automatique) ; les envois reprendront d'eux-mêmes."),
    "DMP_VIHF_SIGNATURE": (ErrorClass.ENVIRONMENT,
                           "Le DMP refuse la signature du jeton d'authentification. Vérifiez le "
                           "certificat de signature ORG SIGN (validité, autorité)."),
    "DMP_VIHF_ABSENT": (ErrorClass.PERMANENT, _SUPPORT.format(
        what="Le jeton d'authentification (VIHF) manquait dans la requête.")),
    "DMP_VIHF_INVALIDE": (ErrorClass.PERMANENT, _SUPPORT.format(
        what="Le DMP refuse le contenu du jeton d'authentification (VIHF).")),
    "DMP_VIHF_PATIENT": (ErrorClass.PERMANENT, _SUPPORT.format(
        what="Le jeton d'authentification ne vise pas le patient du document.")),
    "DMP_WSA_MANQUANT": (ErrorClass.PERMANENT, _SUPPORT.format(
        what="Un en-tête d'adressage manquait dans la requête.")),
    "DMP_WSA_ACTION": (ErrorClass.PERMANENT, _SUPPORT.format(
        what="Le DMP ne connaît pas l'action demandée.")),
    "DMP_SOAP_INVALIDE": (ErrorClass.PERMANENT, _SUPPORT.format(
        what="Le DMP n'a pas pu lire la requête.")),
    "DMP_XADES_INVALIDE": (ErrorClass.PERMANENT, _SUPPORT.format(
        what="Le DMP refuse la signature du lot de documents.")),
    "DMP_XADES_SIGNATURE": (ErrorClass.PERMANENT, _SUPPORT.format(
        what="Le DMP refuse la signature du lot de documents (certificat ou calcul).")),
    "DMP_XADES_DIGEST": (ErrorClass.PERMANENT, _ALTERED.format(what="empreinte signée")),
    "DMP_CDA_INVALIDE": (ErrorClass.PERMANENT,
                         "Le DMP refuse l'en-tête du document CDA. Vérifiez les informations du "
                         "patient et de l'auteur dans le logiciel, puis réexportez le document."),
    "DMP_SUPPRESSION_NON_AUTEUR": (ErrorClass.PERMANENT,
                                   "Seul l'auteur d'un document peut le supprimer du DMP."),
    "DMP_DOSSIER_FERME": (ErrorClass.NEEDS_PERSON,
                          "Le DMP de ce patient est fermé : le document ne peut pas y être "
                          "versé. Parlez-en au patient ; annulez l'envoi s'il ne rouvre pas "
                          "son dossier (dmp-bridge cancel)."),
    "DMP_OPPOSITION_PATIENT": (ErrorClass.NEEDS_PERSON,
                               "Le patient s'est opposé à l'alimentation de son DMP. Enregistrez "
                               "son opposition dans le logiciel et annulez l'envoi "
                               "(dmp-bridge cancel)."),
    "DMP_PS_BLOQUE": (ErrorClass.NEEDS_PERSON,
                      "Le patient a interdit l'accès de ce professionnel à son DMP : le document "
                      "ne peut pas y être versé par lui. Annulez l'envoi (dmp-bridge cancel)."),
    "DMP_AUTORISATION_ABSENTE": (ErrorClass.NEEDS_PERSON,
                                 "Le patient n'a pas autorisé ce professionnel à consulter son "
                                 "DMP (l'alimentation reste possible)."),
    "DMP_MODE_AUTHENTIFICATION": (ErrorClass.ENVIRONMENT,
                                  "Le mode d'authentification ne correspond pas au certificat "
                                  "utilisé (carte CPS ou certificat d'établissement). Vérifiez la "
                                  "configuration des certificats ; les envois reprendront "
                                  "d'eux-mêmes."),
    "DMP_TD02_INVALIDE": (ErrorClass.PERMANENT, _SUPPORT.format(
        what="Le DMP refuse la demande de test d'existence du dossier.")),
    "DMP_SERVICE_INDISPONIBLE": (ErrorClass.TRANSIENT,
                                 "Le service du DMP est momentanément indisponible ; nouvel essai "
                                 "automatique."),
    "DMP_SIMULATEUR_INJECTION": (ErrorClass.TRANSIENT,
                                 "Erreur injectée par le simulateur (test) ; nouvel essai "
                                 "automatique."),
}

ERROR_TABLE: dict[str, tuple[ErrorClass, str]] = {**IHE_CODES, **INVENTED_DMP_CODES}
