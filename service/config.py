"""The bridge's configuration: one TOML file, validated by pydantic at start.

A bad file stops the start with a French message that names the key, says what is wrong and how
to fix it (exit code 2). Relative paths are relative to the folder of the configuration file, so
a whole installation can be moved or copied as one folder.
"""

from __future__ import annotations

import tomllib
import uuid
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

CONFIG_NAME = "dmp-bridge.toml"


class ConfigError(Exception):
    """The configuration cannot be used; `message_fr` says why and what to do."""

    def __init__(self, message_fr: str) -> None:
        super().__init__(message_fr)
        self.message_fr = message_fr


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BridgeSection(_Section):
    data_dir: Path = Path("donnees")
    source_id: Annotated[str, Field(pattern=r"^[0-2](\.(0|[1-9][0-9]*))+$", max_length=64)]
    environment: Literal["simulateur", "production"] = "simulateur"
    retention_days: Annotated[int, Field(ge=1, le=3650)] = 90
    # The audit journal keeps its records this long (then a purge checkpoint keeps the chain
    # verifiable). Ten years by default: the traceability of what was sent to a medical record.
    audit_retention_days: Annotated[int, Field(ge=30, le=36500)] = 3650


class IntakeProfileSection(_Section):
    """One export folder and what its files lack ([[intake.profiles]])."""

    folder: Path
    # The professional who writes the documents of this folder: the keys of the sidecar's
    # "author" object (rpps, family_name, given_name, profession, structure_id…).
    author: dict[str, object] | None = None
    # The document kind when the files do not say it (label, matrix row or typeCode).
    kind: str | None = None
    # The only format this folder takes (others go to error/): pdf+json, hl7, cda, xdm,
    # hprim-sante, hprim-net.
    format: Literal["pdf+json", "hl7", "cda", "xdm", "hprim-sante", "hprim-net"] | None = None
    # File names never touched (glob patterns, case-insensitive), e.g. "*.log", "INDEX.*".
    ignore: list[str] = Field(default_factory=list)
    # The software writes the INS in a CDA only for a qualified identity.
    cda_identity_qualified: bool = False
    # Identity traits may be read from the file name, with this pattern (named groups ins,
    # nom, prenom, naissance, sexe, lieu). Never without this explicit permission.
    identity_from_filename: bool = False
    filename_pattern: str | None = None

    @field_validator("author")
    @classmethod
    def _author(cls, value: dict[str, object] | None) -> dict[str, object] | None:
        if value is None:
            return None
        from bridge.sidecar import AuthorIn

        try:
            AuthorIn.model_validate(value)
        except ValidationError as exc:
            keys = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors()[:5])
            raise ValueError(
                f"l'auteur par défaut est invalide ({keys}) : mêmes clés et formats que "
                "« author » dans une fiche JSON (rpps sur 11 chiffres, structure_id…)"
            ) from None
        return value

    @model_validator(mode="after")
    def _filename_identity(self) -> IntakeProfileSection:
        if not self.identity_from_filename:
            return self
        if not self.filename_pattern:
            raise ValueError(
                "identity_from_filename = true demande filename_pattern (une expression "
                "régulière à groupes nommés, par exemple (?P<nom>[A-Z]+)_(?P<prenom>[A-Z]+))"
            )
        from bridge.folder_formats import check_filename_pattern

        problem = check_filename_pattern(self.filename_pattern)
        if problem is not None:
            raise ValueError(f"filename_pattern : {problem}")
        return self


class IntakeSection(_Section):
    folder: Path = Path("depot")
    stability_seconds: Annotated[float, Field(ge=0, le=600)] = 2.0
    rescan_seconds: Annotated[float, Field(gt=0, le=3600)] = 2.0
    # More export folders, each with its own defaults; a profile whose folder is `folder`
    # gives its defaults to the main folder.
    profiles: list[IntakeProfileSection] = Field(default_factory=list)

    @model_validator(mode="after")
    def _distinct_folders(self) -> IntakeSection:
        seen: set[Path] = set()
        for profile in self.profiles:
            if profile.folder in seen:
                raise ValueError(
                    f"le dossier « {profile.folder} » a deux profils [[intake.profiles]] : "
                    "un seul profil par dossier"
                )
            seen.add(profile.folder)
        return self

    def folders(self) -> list[IntakeProfileSection]:
        """Every watched folder with its profile: the main folder first (its own profile, or
        none), then the other profiles' folders."""
        main = next((p for p in self.profiles if p.folder == self.folder), None)
        first = main or IntakeProfileSection(folder=self.folder)
        return [first, *(p for p in self.profiles if p is not main)]


class DmpSection(_Section):
    url: Annotated[str, Field(pattern=r"^https://[^\s/]+(/\S*)?$")] = (
        "https://127.0.0.1:8443/si-dmp-server/v2/services"
    )
    server_ca: Path = Path("pki/ac-test.pem")
    timeout_seconds: Annotated[float, Field(gt=0, le=600)] = 60.0
    max_rate_per_second: Annotated[float, Field(gt=0, le=5)] = 4.0
    lifetime_days: Annotated[int, Field(ge=1, le=365)] = 14
    retry_first_seconds: Annotated[float, Field(ge=1, le=3600)] = 30.0
    retry_max_seconds: Annotated[float, Field(ge=1, le=86400)] = 3600.0
    retry_max_attempts: Annotated[int, Field(ge=1, le=1000)] = 48
    lot_max_documents: Annotated[int, Field(ge=1, le=50)] = 10

    @model_validator(mode="after")
    def _retry_bounds(self) -> DmpSection:
        if self.retry_max_seconds < self.retry_first_seconds:
            raise ValueError(
                "dmp.retry_max_seconds doit être supérieur ou égal à dmp.retry_first_seconds"
            )
        return self


class CredentialsSection(_Section):
    # « etablissement »: the structure's software certificates (INDIRECTE); « carte »: the
    # professionals' CPS cards (DIRECTE; see [carte]).
    mode: Literal["etablissement", "carte"] = "etablissement"
    tls_cert: Path = Path("pki/org-auth-cli.pem")
    tls_key: Path = Path("pki/org-auth-cli.key")
    sign_cert: Path = Path("pki/org-sign.pem")
    sign_key: Path = Path("pki/org-sign.key")
    # IGC Santé certificates as delivered (PKCS#12); when set, they replace the PEM pairs.
    tls_p12: Path | None = None
    sign_p12: Path | None = None
    # The PKCS#12 passphrase, alone in a file readable by the service account only.
    p12_passphrase_file: Path | None = None


def _default_pkcs11_module() -> Path:
    """Where the ANS Cryptolib CPS installs its PKCS#11 module (spec/card-auth.md A4)."""
    import sys

    if sys.platform == "win32":
        return Path("C:/Windows/System32/cps3_pkcs11_w64.dll")
    if sys.platform == "darwin":
        return Path("/usr/local/lib/libcps3_pkcs11_osx.dylib")
    return Path("/usr/lib/libcps3_pkcs11_lux.so")


class CarteSection(_Section):
    # « pkcs11 »: the card through its PKCS#11 module (the Cryptolib CPS; production).
    # « apdu »: the project's emulated test card, spoken to directly over PC/SC (tests, demo).
    acces: Literal["pkcs11", "apdu"] = "pkcs11"
    module: Path = Field(default_factory=_default_pkcs11_module)
    # Readers to use (PC/SC names); empty: every reader.
    lecteurs: list[str] = Field(default_factory=list)
    # The situation d'exercice to feed from when a card carries several (1 … 16); None: ask.
    situation: Annotated[int, Field(ge=1, le=16)] | None = None


class DashboardSection(_Section):
    # The local web dashboard (French), on 127.0.0.1 only; also serves /metrics.
    enabled: bool = True
    port: Annotated[int, Field(ge=1, le=65535)] = 8790


class AlertsSection(_Section):
    # A document waiting longer than this raises an alert (hours).
    queue_age_hours: Annotated[float, Field(gt=0, le=720)] = 24.0
    # Free space under this on the data folder's disk raises an alert (MiB).
    low_disk_mb: Annotated[int, Field(ge=1, le=1_000_000)] = 500
    # Optional e-mail: SMTP server, sender and recipients (no password stored here: a relay
    # of the practice's network, or smtp_password_file readable by the service only).
    smtp_host: str | None = None
    smtp_port: Annotated[int, Field(ge=1, le=65535)] = 25
    smtp_starttls: bool = False
    smtp_user: str | None = None
    smtp_password_file: Path | None = None
    email_from: str | None = None
    email_to: list[str] = Field(default_factory=list)
    # Optional webhook: a JSON POST per alert start and end.
    webhook_url: Annotated[str, Field(pattern=r"^https?://\S+$")] | None = None


class SimulatorSection(_Section):
    embedded: bool = True
    port: Annotated[int, Field(ge=1, le=65535)] = 8443
    server_cert: Path = Path("pki/simulateur-serveur.pem")
    server_key: Path = Path("pki/simulateur-serveur.key")
    client_ca: Path = Path("pki/ac-test.pem")


class HttpSection(_Section):
    enabled: bool = False
    port: Annotated[int, Field(ge=1, le=65535)] = 8787
    # 22 Mo: a 15 Mo PDF (the largest accepted) sent as base64 JSON still fits.
    max_body_mb: Annotated[int, Field(ge=1, le=100)] = 22
    # A request's headers must arrive within this delay (also: idle kept-alive connections).
    header_timeout_seconds: Annotated[float, Field(gt=0, le=600)] = 30.0
    # A request's body must arrive within this delay of its headers, else 408.
    body_timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 60.0
    # Bodies read at once; one more gets 503 + Retry-After.
    max_concurrent_uploads: Annotated[int, Field(ge=1, le=64)] = 8


class MllpSection(_Section):
    enabled: bool = False
    port: Annotated[int, Field(ge=1, le=65535)] = 2575
    max_message_kb: Annotated[int, Field(ge=16, le=65536)] = 20480
    idle_timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 120.0
    # Bytes may keep coming this long without completing a message (slow or stuck sender).
    frame_timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 600.0
    # The author's activity sector (TRE_R02) HL7 v2 cannot carry: SA07 cabinet individuel,
    # SA08 cabinet de groupe, SA33 officine… Also for .hl7 files whose folder profile's
    # author does not give one.
    author_sector: str = "SA07"
    accept_adt: bool = True  # PAM-FR ADT → patient registry (opposition / consent)
    zam_host: str = "127.0.0.1"  # the sender's own MLLP listener for ZAM^Z01
    zam_port: Annotated[int, Field(ge=1, le=65535)] | None = None  # None: no ZAM sent
    zam_attempts: Annotated[int, Field(ge=1, le=100)] = 5
    zam_first_delay_seconds: Annotated[float, Field(gt=0, le=3600)] = 5.0

    @field_validator("author_sector")
    @classmethod
    def _sector(cls, value: str) -> str:
        from bridge.hl7v2.people import sector_problem

        problem = sector_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value


class MatrixSection(_Section):
    # The regional overlay on top of the national matrix (None: national only).
    region: str | None = "bretagne"
    # Extra overlay files (for example the URPS's own), applied after the region's.
    extra_files: list[Path] = Field(default_factory=list)
    # This practice's own changes, applied last: same shapes as an overlay file.
    override: list[dict[str, object]] = Field(default_factory=list)
    add: list[dict[str, object]] = Field(default_factory=list)
    disable: list[dict[str, object]] = Field(default_factory=list)


class LoggingSection(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"


class BridgeConfig(_Section):
    bridge: BridgeSection
    intake: IntakeSection = IntakeSection()
    dmp: DmpSection = DmpSection()
    credentials: CredentialsSection = CredentialsSection()
    carte: CarteSection = CarteSection()
    dashboard: DashboardSection = DashboardSection()
    alerts: AlertsSection = AlertsSection()
    simulator: SimulatorSection = SimulatorSection()
    matrix: MatrixSection = MatrixSection()
    mllp: MllpSection = MllpSection()
    http: HttpSection = HttpSection()
    logging: LoggingSection = LoggingSection()
    # Folder of the configuration file: the base of every relative path.
    base_dir: Path = Field(default=Path("."), exclude=True)

    @field_validator("base_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.resolve()

    def path(self, value: Path) -> Path:
        """A configured path, made absolute against the configuration's folder."""
        return value if value.is_absolute() else self.base_dir / value

    @property
    def store_path(self) -> Path:
        return self.path(self.bridge.data_dir) / "file-attente.sqlite3"

    @property
    def simulator_db_path(self) -> Path:
        return self.path(self.bridge.data_dir) / "simulateur.sqlite3"

    @property
    def api_token_path(self) -> Path:
        """The local API's token, created by `dmp-bridge init`, readable by the service only."""
        return self.path(self.bridge.data_dir) / "jeton-api"

    @property
    def log_path(self) -> Path:
        return self.path(self.bridge.data_dir) / "journaux" / "dmp-bridge.jsonl"


# What to tell the user for each kind of pydantic problem.
_FIXES = {
    "missing": "ajoutez cette clé",
    "extra_forbidden": "cette clé n'existe pas : vérifiez son orthographe ou supprimez-la",
    "string_pattern_mismatch": "la valeur n'a pas le format attendu",
    "literal_error": "valeur non permise",
    "greater_than": "la valeur est trop petite",
    "greater_than_equal": "la valeur est trop petite",
    "less_than_equal": "la valeur est trop grande",
    "int_parsing": "un nombre entier est attendu",
    "float_parsing": "un nombre est attendu",
    "bool_parsing": "true ou false est attendu",
    "bool_type": "true ou false est attendu",
}

_HINTS = {
    "bridge.source_id": "un OID (chiffres séparés par des points) ; « dmp-bridge init » en crée un",
    "dmp.url": "une adresse https://…/si-dmp-server/v2/services",
    "dmp.max_rate_per_second": "entre 0 et 5 : le DMP demande de rester sous 5 transactions/s",
    "simulator.port": "un port entre 1 et 65535",
    "logging.level": "debug, info, warning ou error",
    "credentials.mode": "« etablissement » (certificats logiciels de la structure) ou « carte » "
    "(cartes CPS des professionnels)",
    "carte.acces": "« pkcs11 » (Cryptolib CPS) ou « apdu » (carte de test émulée)",
    "mllp.author_sector": "un code de secteur d'activité TRE_R02 (SA07 cabinet individuel, "
    "SA08 cabinet de groupe, SA33 officine…)",
    "carte.situation": "le numéro de la situation d'exercice, entre 1 et 16",
    "bridge.environment": "« simulateur » ou « production »",
    "bridge.retention_days": "un nombre de jours entre 1 et 3650 (90 par défaut)",
    "dmp.retry_first_seconds": "un délai en secondes entre 1 et 3600 (30 par défaut)",
    "dmp.retry_max_seconds": "un délai en secondes entre 1 et 86400 (3600 par défaut)",
    "dmp.retry_max_attempts": "un nombre de tentatives entre 1 et 1000 (48 par défaut)",
    "dmp.lot_max_documents": "entre 1 (pas de lot) et 50 (10 par défaut)",
    "matrix.region": "le nom d'une matrice régionale livrée (par exemple « bretagne »)",
}


def _explain(exc: ValidationError, source: Path) -> str:
    lines = [f"La configuration {source} est invalide :"]
    for error in exc.errors()[:10]:
        key = ".".join(str(p) for p in error["loc"])
        fix = _FIXES.get(error["type"], "valeur invalide")
        if error["type"] == "value_error":  # our own checks say what is wrong, in French
            fix = str(error.get("ctx", {}).get("error", fix))
        hint = _HINTS.get(key)
        given = error.get("input")
        shown = (
            ""
            if error["type"] in ("missing", "extra_forbidden") or isinstance(given, dict)
            else f" (valeur lue : {given!r})"
        )
        lines.append(f"  - clé « {key} »{shown} : {fix}" + (f" — attendu : {hint}" if hint else ""))
    lines.append(
        "Corrigez le fichier puis relancez. Un modèle commenté s'obtient avec "
        "« dmp-bridge init DOSSIER »."
    )
    return "\n".join(lines)


def load_config(path: Path) -> BridgeConfig:
    """Read and validate the configuration, or raise ConfigError with a French explanation."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"Le fichier de configuration {path} est introuvable. Créez-le avec "
            "« dmp-bridge init DOSSIER », ou indiquez son chemin avec --config."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Le fichier de configuration {path} est illisible : {exc}.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"Le fichier de configuration {path} n'est pas un TOML valide : {exc}. "
            "Vérifiez les guillemets autour des textes et les crochets des sections."
        ) from None
    try:
        return BridgeConfig.model_validate({**raw, "base_dir": path.parent})
    except ValidationError as exc:
        raise ConfigError(_explain(exc, path)) from None


def default_config_text(source_id: str | None = None) -> str:
    """The commented configuration `dmp-bridge init` writes."""
    source_id = source_id or f"2.25.{uuid.uuid4().int}"
    return f'''# Configuration de dmp-bridge.
# Les chemins relatifs partent du dossier de ce fichier.

[bridge]
# Dossier des données : file d'attente (SQLite), journaux, base du simulateur.
data_dir = "donnees"
# Identifiant (OID) de cette installation, envoyé au DMP comme sourceId. Ne le changez pas.
source_id = "{source_id}"
# « simulateur » : les documents vont au simulateur du DMP intégré (aucun envoi réel).
# « production » : le vrai DMP ; les INS de test y sont alors refusés.
environment = "simulateur"
# Le contenu des documents enregistrés dans le DMP est effacé de la file après ce nombre de
# jours (leur historique et leurs empreintes sont gardés). 90 jours permettent de répondre
# aux questions du cabinet sur un envoi récent, sans garder de données de santé plus longtemps.
retention_days = 90
# Le journal d'audit (qui a envoyé quoi, quand, avec quel résultat ; patients pseudonymisés)
# garde ses lignes ce nombre de jours (10 ans par défaut), puis les purge sans casser sa chaîne.
audit_retention_days = 3650

[intake]
# Dossier où le logiciel du cabinet dépose NOM.pdf et sa fiche NOM.json.
# dmp-bridge y crée en-cours/, done/ (documents pris en charge) et error/ (refusés, avec le motif).
folder = "depot"
# Un fichier n'est pris que si sa taille n'a pas changé pendant ce délai (secondes).
stability_seconds = 2.0
# Relecture complète du dossier au moins toutes les N secondes (en plus des événements).
rescan_seconds = 2.0
# Autres formats déposés dans un dossier : message HL7 (.hl7, .er7), document CDA (.xml),
# archive IHE XDM (.zip), HPRIM Santé ou HPRIM Net avec son PDF. Un profil par dossier donne
# ce que ses fichiers ne disent pas (auteur, type de document) ; un profil dont le dossier est
# « folder » ci-dessus s'applique au dossier principal. Exemple :
# [[intake.profiles]]
# folder = "depot-labo"
# format = "hprim-sante"            # seul format accepté dans ce dossier (facultatif)
# kind = "11502-2"                  # type de document par défaut
# ignore = ["*.log", "INDEX.*"]     # fichiers jamais touchés
# cda_identity_qualified = false    # true : l'INS n'est écrit que pour une identité qualifiée
# identity_from_filename = false    # identité lue dans le nom du fichier : jamais sans ce réglage
# [intake.profiles.author]          # auteur par défaut, mêmes clés que dans une fiche JSON
# rpps = "10101010101"
# family_name = "MARTIN"
# given_name = "Claire"
# profession = "10"
# structure_id = "499700366240007"
# structure_name = "Cabinet médical des Lilas"

[dmp]
# Adresse des services du DMP (ici le simulateur intégré).
url = "https://127.0.0.1:8443/si-dmp-server/v2/services"
# Autorité de certification qui a émis le certificat du serveur DMP.
server_ca = "pki/ac-test.pem"
timeout_seconds = 60.0
# Débit maximal d'envoi (le DMP demande de rester sous 5 transactions par seconde).
max_rate_per_second = 4.0
# Un document toujours pas enregistré après ce nombre de jours est abandonné (état « refusé »,
# renvoyable avec « dmp-bridge replay ») et signalé ; il n'est jamais effacé.
lifetime_days = 14
# Nouveaux essais après une panne passagère : premier essai après retry_first_seconds
# (absorbe un redémarrage du DMP ou une coupure réseau), puis délai doublé à chaque fois
# jusqu'à retry_max_seconds (une longue panne ne provoque pas de rafale d'envois à son retour),
# au plus retry_max_attempts tentatives (48 au plafond d'une heure ≈ deux jours), après quoi
# le document attend une personne (état « refusé », renvoyable).
retry_first_seconds = 30.0
retry_max_seconds = 3600.0
retry_max_attempts = 48
# Documents d'un même patient et d'un même auteur prêts ensemble : envoyés en un seul lot
# (une seule signature), au plus ce nombre par lot. 1 : chaque document est envoyé seul.
lot_max_documents = 10

[credentials]
# « etablissement » : certificats logiciels de la structure (mode d'authentification indirect).
# « carte » : la carte CPS du professionnel dans un lecteur (mode direct, voir [carte]).
mode = "etablissement"
# Certificat ORG AUTH_CLI (authentification TLS) et sa clé.
tls_cert = "pki/org-auth-cli.pem"
tls_key = "pki/org-auth-cli.key"
# Certificat ORG SIGN (cachet : signe le VIHF et le lot de soumission) et sa clé.
sign_cert = "pki/org-sign.pem"
sign_key = "pki/org-sign.key"
# Certificats livrés par l'IGC Santé au format PKCS#12 (.p12) : ils remplacent les paires
# ci-dessus. La phrase de passe est seule dans un fichier lisible par le service uniquement.
# tls_p12 = "pki/auth.p12"
# sign_p12 = "pki/sign.p12"
# p12_passphrase_file = "pki/phrase-p12.txt"

[carte]
# Utilisé quand credentials.mode = "carte".
# « pkcs11 » : la carte par la Cryptolib CPS de l'ANS (à installer ; chemin ci-dessous).
acces = "pkcs11"
# Module PKCS#11 de la Cryptolib CPS (Windows : C:/Windows/System32/cps3_pkcs11_w64.dll).
# module = "/usr/lib/libcps3_pkcs11_lux.so"
# Lecteurs à utiliser (noms PC/SC) ; vide : tous.
lecteurs = []
# Situation d'exercice d'où partent les documents, si la carte en porte plusieurs.
# situation = 1

[dashboard]
# Tableau de bord en français sur http://127.0.0.1:PORT/ (jeton du fichier donnees/jeton-api).
enabled = true
port = 8790

[alerts]
# Alerte quand un document attend depuis plus de queue_age_hours heures, ou quand l'espace
# libre du disque des données passe sous low_disk_mb Mo. Une alerte au début, une à la fin.
queue_age_hours = 24.0
low_disk_mb = 500
# Envoi facultatif par courriel (serveur SMTP du cabinet) et/ou par webhook (POST JSON).
# smtp_host = "smtp.cabinet.local"
# email_from = "dmp-bridge@cabinet.local"
# email_to = ["secretariat@cabinet.local"]
# webhook_url = "https://supervision.urps.example/alertes"

[simulator]
# true : dmp-bridge démarre lui-même le simulateur du DMP sur 127.0.0.1.
embedded = true
port = 8443
server_cert = "pki/simulateur-serveur.pem"
server_key = "pki/simulateur-serveur.key"
client_ca = "pki/ac-test.pem"

[matrix]
# Matrice d'alimentation : la matrice nationale, puis la surcouche régionale, puis les
# fichiers de l'URPS, puis les réglages propres au cabinet ci-dessous.
region = "bretagne"
extra_files = []
# Exemples de réglages du cabinet (même forme qu'un fichier de surcouche) :
# [[matrix.override]]
# id = "IDE-02"
# aliases = ["fiche de passage", "CR de tournée"]
# [[matrix.disable]]
# id = "MG-11"

[mllp]
# Réception de messages HL7 v2 (profil ANS : MDM^T02, ORU^R01 avec un PDF) sur 127.0.0.1.
# L'accusé de réception AA n'est envoyé qu'une fois le document enregistré dans la file.
enabled = false
port = 2575
max_message_kb = 20480
# Connexion fermée après idle_timeout_seconds sans rien recevoir, ou quand un message n'est
# toujours pas complet frame_timeout_seconds après son premier octet (émetteur bloqué).
idle_timeout_seconds = 120.0
frame_timeout_seconds = 600.0
# Secteur d'activité de l'auteur (le HL7 ne le transmet pas) : SA07 cabinet individuel,
# SA08 cabinet de groupe, SA33 officine… Il donne le type de structure et le contenu envoyés
# au DMP. Vaut aussi pour les fichiers .hl7 déposés, sauf si le profil du dossier le précise
# (author.sector).
author_sector = "SA07"
# Messages ADT du profil PAM-FR (A01, A04, A08, A28, A31) : le segment ZFA met à jour le registre
# des patients (opposition à l'alimentation, consentement à la consultation).
accept_adt = true
# Accusé métier ZAM^Z01 (quand le message le demande, ACK_RECEPTION=Y) envoyé, une fois le
# résultat du DMP connu, à l'écoute MLLP du logiciel émetteur : adresse et port (sans port :
# aucun accusé métier n'est envoyé).
zam_host = "127.0.0.1"
# zam_port = 2576
zam_attempts = 5
zam_first_delay_seconds = 5.0

[http]
# API HTTP locale sur 127.0.0.1 : POST /api/v1/documents (PDF + fiche JSON), suivi par
# GET /api/v1/documents/{{id}}, description OpenAPI sur /api/openapi.json. Jeton requis
# (Authorization: Bearer …) : il est dans le fichier donnees/jeton-api créé par « init ».
enabled = false
port = 8787
max_body_mb = 22
# Un client trop lent est coupé : en-têtes à recevoir en header_timeout_seconds, corps du
# document en body_timeout_seconds (sinon réponse 408, rien n'est enregistré).
header_timeout_seconds = 30.0
body_timeout_seconds = 60.0
# Documents reçus en même temps au plus ; au-delà, réponse 503 (renvoyer un peu plus tard).
max_concurrent_uploads = 8

[logging]
# debug, info, warning ou error. Les journaux ne contiennent jamais de données de santé.
level = "info"
'''
