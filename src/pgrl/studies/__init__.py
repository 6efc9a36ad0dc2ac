"""Measurement studies run at fixed policy parameters (not training runs).

- ``pgrl.studies.grad_variance.grad_variance_study``: how noisy five policy-gradient estimators
  are on the same sampled episodes (REINFORCE, reward-to-go, VPG baseline, TD(0), GAE).
- ``pgrl.studies.gae_lambda.gae_lambda_study``: bias and variance of GAE(lambda) advantages
  against Monte-Carlo ground truth obtained by restarting native environments from saved states.

Both return a ``StudyResult`` (title, text, figures, table) and write their PNG and CSV into the
output folder; ``write_study_report`` turns one into report.html.  See docs/studies.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class StudyResult:
    """What a study measured, in the form reports consume.

    title: one line naming the study, env and settings.
    text: a few sentences: what was measured, the setup, and what the numbers say.
    figures: PNG files the study wrote.
    table: (columns, rows), the same numbers as the CSV the study wrote.
    """

    title: str
    text: str
    figures: list[Path]
    table: tuple[list[str], list[list]]


def write_study_report(result: StudyResult, path: str | Path) -> Path:
    """report.html for one study, through pgrl.report_html (title, text, figures, table)."""
    from pgrl.report_html import Section, write_report_html

    path = Path(path)
    section = Section(title=result.title, text=result.text, images=list(result.figures), tables=[result.table])
    write_report_html(path, result.title, [section])
    return path


__all__ = ["StudyResult", "write_study_report"]
