"""Is this file really a PDF? A cheap structural check before anything is packaged."""

from __future__ import annotations

from bridge.errors import IntakeRejected

MAX_PDF_BYTES = 15 * 1024 * 1024  # larger documents are refused by DMP-compatible software too


def check_pdf(data: bytes, *, file_name: str) -> None:
    """Raise IntakeRejected unless `data` looks like a complete PDF file."""
    if len(data) == 0:
        raise IntakeRejected(
            f"Le fichier {file_name} est vide. Réexportez le document depuis le logiciel.",
            code="PDF_EMPTY",
            event="pdf_empty",
        )
    if len(data) > MAX_PDF_BYTES:
        raise IntakeRejected(
            f"Le fichier {file_name} dépasse {MAX_PDF_BYTES // (1024 * 1024)} Mo : "
            "réduisez sa taille (numérisation en noir et blanc, 200 dpi) "
            "puis déposez-le à nouveau.",
            code="PDF_TOO_LARGE",
            event="pdf_too_large",
        )
    if not data.startswith(b"%PDF-"):
        raise IntakeRejected(
            f"Le fichier {file_name} n'est pas un PDF (il ne commence pas par « %PDF- »). "
            "Exportez le document au format PDF.",
            code="PDF_NOT_PDF",
            event="pdf_signature_missing",
        )
    # A PDF ends with %%EOF (possibly followed by whitespace); a truncated copy does not.
    if b"%%EOF" not in data[-1024:]:
        raise IntakeRejected(
            f"Le fichier {file_name} est un PDF incomplet (fin de fichier absente) : "
            "il a peut-être été copié pendant son écriture. Déposez-le à nouveau.",
            code="PDF_TRUNCATED",
            event="pdf_truncated",
        )
