"""Copy the official XML schemas the bridge validates with into ``mappings/schemas/``.

The copies are byte-identical to the shared data set (``<shared>/data/schemas/``), which itself
holds byte-identical copies of public files; see ``<shared>/data/SCHEMAS.md``. After this script
has run, the project never reads the shared folder again: tests and the service only use
``mappings/schemas/``.

Usage: ``python scripts/import_schemas.py [--shared PATH]`` (default ``../shared`` relative to
the repository root). Standard library only.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TARGET = REPO_ROOT / "mappings" / "schemas"


@dataclass(frozen=True)
class Source:
    """One copied folder and where its files come from (SCHEMAS.md §1)."""

    folder: str
    contents: str
    repository: str
    path: str
    file_commit: str
    snapshot: str


SOURCES: tuple[Source, ...] = (
    Source(
        "ebrs30/ebRS",
        "OASIS ebXML RegRep 3.0: rim.xsd, rs.xsd, lcm.xsd, query.xsd, cms.xsd",
        "watzo/ihe-wadows-2017",
        "schema/ebRS/",
        "c39a9965f999c5a723377dd89cb28502316b2cb1",
        "69567ed02c9160ef550fd1cf201f8c4280c51d1b",
    ),
    Source(
        "ebrs30/w3",
        "W3C xml.xsd (imported by rim.xsd) and xmlmime.xsd",
        "watzo/ihe-wadows-2017",
        "schema/w3/",
        "c39a9965f999c5a723377dd89cb28502316b2cb1",
        "69567ed02c9160ef550fd1cf201f8c4280c51d1b",
    ),
    Source(
        "ebrs30/IHE",
        "IHE XDS.b_DocumentRepository.xsd (urn:ihe:iti:xds-b:2007); IHE deleted this folder in "
        "b516120e (2020-08-28), it was read at the parent commit",
        "IHE/IT-Infrastructure",
        "schema/IHE/XDS.b_DocumentRepository.xsd",
        "0a5875656bd2196e00ab89e76000dabb2521c8d5",
        "9ad138a2eb5c29558ec69e79a0752f35d43ee9da",
    ),
    Source(
        "cda",
        "ANS CDA R2 schema set with the French extensions (CDA_extended.xsd and its includes: "
        "general/, sdtc/, pharmacy/, dicom/, ihelab/, schema/)",
        "ansforge/TestContenuCDA-3-0",
        "infrastructure/cda/ (whole folder, structure kept)",
        "cbebb153d843710dcb75126fb1b04302f015c647 (2024-03-06)",
        "7cd489b39368809df9bcf2cfef5e5d6354438a02",
    ),
    Source(
        "saml-dsig/saml",
        "SAML 2.0 assertion and protocol schemas with xmldsig-core, xenc and xml.xsd, imported "
        "by relative name",
        "SAML-Toolkits/python3-saml",
        "src/onelogin/saml2/schemas/",
        "90781d92ee2ab54c278e36bc9e1b9b8f61103d42",
        "0320fd4c4ae27d3ce5b8faeca6bb5807468626e8",
    ),
    Source(
        "saml-dsig/signxml",
        "ETSI XAdES 1.3.2 / 1.4.1 / TS 101 903 schemas, xmldsig-core and xmldsig11 (layout kept)",
        "XML-Security/signxml",
        "signxml/schemas/ and signxml/xades/schemas/",
        "2ce42eb508d90f1d7aca892393193b106995971e",
        "4c4de69fb0ab985f5b31145824a21c5f615cb46f",
    ),
    Source(
        "saml-dsig/xades111",
        "ETSI XAdES 1.1.1 XAdESv111.xsd (imports xmldsig by absolute URL: URL map needed)",
        "esig/dss",
        "specs-xades/src/main/resources/xsd/XAdESv111.xsd",
        "154f1380451a0f1aef790f3906cd7d65b638d088",
        "d9473b8efea72fd5754623fa92bb9311f2b005c5",
    ),
    Source(
        "saml-dsig/wss4j",
        "SOAP 1.2 envelope, WS-Addressing 1.0, XOP include, WS-Security 1.0 secext and utility, "
        "xml.xsd, xmldsig-core (several import by absolute URL: URL map needed)",
        "apache/ws-wss4j",
        "ws-security-stax/src/main/resources/schemas/ (ws-addr200508.xsd from "
        "ws-security-policy-stax/src/main/resources/schemas/)",
        "c11bbd9ccfe5991ab7df1d4c263f6335cfc870f1",
        "b975a69754835a21a9f717aeb60e1e5b364786e7",
    ),
)


def _copy_folder(src: Path, dst: Path) -> int:
    """Copy every file of ``src`` (recursively) to ``dst``, byte for byte; return the count."""
    count = 0
    for file in sorted(p for p in src.rglob("*") if p.is_file()):
        out = dst / file.relative_to(src)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(file, out)
        if not filecmp.cmp(file, out, shallow=False):
            raise RuntimeError(f"copy of {file} differs from its source")
        count += 1
    return count


def _provenance(counts: dict[str, int]) -> str:
    lines = [
        "# Official schemas — provenance",
        "",
        "Every file under this folder is a **byte-identical copy** of a public file; nothing was",
        "edited. The files belong to their publishers (OASIS, W3C, IHE, HL7, ETSI, ANS); the",
        "repositories below are only where the copies were taken from. They were imported from the",
        "team's shared data set (`data/schemas/`, documented in `data/SCHEMAS.md`) by",
        "`scripts/import_schemas.py`; re-run that script to refresh them.",
        "",
        '"File commit" is the last commit that touched the file(s); "snapshot" is the repository',
        "commit that was read.",
        "",
        "| Folder | Files | Contents | Source repository | Path | File commit | Snapshot |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in SOURCES:
        lines.append(
            f"| `{s.folder}/` | {counts[s.folder]} | {s.contents} | {s.repository} | `{s.path}` "
            f"| {s.file_commit} | {s.snapshot} |"
        )
    lines += [
        "",
        "Loading offline: `bridge/schemas.py` parses these files with `no_network=True` and maps",
        "the few absolute `schemaLocation` URLs (xml.xsd, xmldsig-core, wss utility, xop include)",
        "to the local copies; any other URL is refused.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shared",
        type=Path,
        default=REPO_ROOT.parent / "shared",
        help="the shared data folder (default: ../shared relative to the repository root)",
    )
    args = parser.parse_args(argv)
    source_root: Path = args.shared / "data" / "schemas"
    if not source_root.is_dir():
        print(f"no schemas folder at {source_root}", file=sys.stderr)
        return 2
    counts: dict[str, int] = {}
    for s in SOURCES:
        src = source_root / s.folder
        if not src.is_dir():
            print(f"missing source folder {src}", file=sys.stderr)
            return 2
        dst = TARGET / s.folder
        if dst.exists():
            shutil.rmtree(dst)
        counts[s.folder] = _copy_folder(src, dst)
        print(f"{s.folder}: {counts[s.folder]} files")
    (TARGET / "PROVENANCE.md").write_text(_provenance(counts), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
