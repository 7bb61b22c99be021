"""Metrics and, later, the few-shot evaluation protocol."""

from .metrics import calibration_report, classification_report, multilabel_report, risk_coverage

__all__ = ["calibration_report", "classification_report", "multilabel_report", "risk_coverage"]
