"""Presentation-attack-detection evaluation: ISO/IEC 30107-3 metrics, reports, plots."""

from common.evaluation.metrics import (
    acer,
    apcer,
    apcer_max,
    apcer_per_attack_type,
    auc,
    bpcer,
    bpcer_at_apcer,
    confusion,
    equal_error_rate,
    hter,
    threshold_at_operating_point,
)
from common.evaluation.report import EvaluationReport, combine_reports, evaluate, write_report

__all__ = [
    "EvaluationReport",
    "acer",
    "apcer",
    "apcer_max",
    "apcer_per_attack_type",
    "auc",
    "bpcer",
    "bpcer_at_apcer",
    "combine_reports",
    "confusion",
    "equal_error_rate",
    "evaluate",
    "hter",
    "threshold_at_operating_point",
    "write_report",
]
