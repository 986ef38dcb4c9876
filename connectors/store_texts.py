"""The timeline lines both stores write themselves (code, French message), so the SQLite and
PostgreSQL queues tell the same history."""

from __future__ import annotations

CLAIMED_WITH_LOT = (
    "CLAIMED_WITH_LOT",
    "Pris en charge avec les autres documents de son lot (un seul envoi pour tous).",
)
CLAIMED_FOR_LOT = (
    "CLAIMED_FOR_LOT",
    "Pris en charge avec d'autres documents du même patient et du même auteur (un seul envoi).",
)
PACKAGE_DISCARDED = (
    "LOT_PACKAGE_DISCARDED",
    "Le lot a été refusé en bloc par le DMP (rien n'y a été enregistré) : le document garde "
    "son identifiant et son contenu, et repartira seul.",
)
PURGED = (
    "PAYLOAD_PURGED",
    "Durée de conservation atteinte : le contenu du document est effacé de la file d'attente "
    "(son enregistrement dans le DMP et son historique sont gardés).",
)
