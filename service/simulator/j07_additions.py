"""typeCodes accepted on top of the shipped JDV_J07 file (the "J07-26 additions").

Transcribed by hand, because the shipped `JDV_J07-XdsTypeCode-CISIS` (version 2024-09-27) does
not carry every code that the DMP is expected to accept in 2026. Provenance of each line:

- 96163-1 "Bilan de soins infirmiers": ANS terminology change request "JDV-J07-XdsTypeCode-CISIS :
  Création code 96163-1 Bilan de soins infirmiers", quoted in spec/dmp-protocol.md §3.3 (seen in
  public code, repository not identified). Not in J07 2024-09 nor in ASS_X16 2024-02.
- 34120-6, 96349-6, 89233-1 (LOINC) and PRESC-AAT (TRE_A05): named by the issue "Speak the DMP's
  whole protocol…" as J07-26 additions; they are already in the shipped J07 2024-09-27 and are
  repeated here so that a future J07 file without them does not silently narrow what passes.

Keep this list small; remove a line when the shipped J07 file carries it with the same system.
"""

from __future__ import annotations

from mappings.valuesets import LOINC, TRE_A05_SYSTEM

J07_ADDITIONS: frozenset[tuple[str, str]] = frozenset(
    {
        ("96163-1", LOINC),  # Bilan de soins infirmiers (change request, spec §3.3)
        ("34120-6", LOINC),  # Bilan par professionnel de santé
        ("96349-6", LOINC),  # Lettre d'adressage
        ("89233-1", LOINC),  # CR de grossesse
        ("PRESC-AAT", TRE_A05_SYSTEM),  # Prescription arrêt de travail
    }
)
