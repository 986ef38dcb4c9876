"""The feeding matrix the service runs with: national + region + URPS files + this practice's
overrides from the configuration, checked against the value sets before anything starts."""

from __future__ import annotations

from pathlib import Path

from mappings.matrix import Matrix, MatrixError, MatrixProblem
from mappings.matrix_check import check_matrix
from mappings.matrix_load import load_matrix
from service.config import BridgeConfig, ConfigError


def explain_problems(problems: list[MatrixProblem]) -> str:
    lines = ["La matrice d'alimentation est incohérente :"]
    for problem in problems[:30]:
        where = problem.file + (f", ligne « {problem.row_id} »" if problem.row_id else "")
        lines.append(f"  - {where} : {problem.message_fr}")
    if len(problems) > 30:
        lines.append(f"  … et {len(problems) - 30} autre(s).")
    lines.append("Corrigez ces lignes puis relancez « dmp-bridge matrix check ».")
    return "\n".join(lines)


def matrix_problems(*, region: str | None, overrides: list[dict[str, object]],
                    extra_files: list[Path]) -> tuple[Matrix | None, list[MatrixProblem]]:
    """Load and check; never raises for a faulty matrix, returns its problems instead."""
    try:
        matrix = load_matrix(region=region, overrides=overrides, extra_files=extra_files)
    except MatrixError as exc:
        return None, list(exc.problems)
    return matrix, check_matrix(matrix)


def config_overrides(config: BridgeConfig) -> list[dict[str, object]]:
    section = config.matrix
    if not (section.override or section.add or section.disable):
        return []
    return [{"override": section.override, "add": section.add, "disable": section.disable}]


def matrix_from_config(config: BridgeConfig) -> Matrix:
    """The checked matrix, or ConfigError listing file, row and fix for each problem."""
    matrix, problems = matrix_problems(
        region=config.matrix.region, overrides=config_overrides(config),
        extra_files=[config.path(p) for p in config.matrix.extra_files])
    if problems or matrix is None:
        raise ConfigError(explain_problems(problems))
    return matrix
