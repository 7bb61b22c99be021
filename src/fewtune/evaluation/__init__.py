"""Metrics and, later, the few-shot evaluation protocol."""

from .metrics import calibration_report, classification_report, multilabel_report

__all__ = ["calibration_report", "classification_report", "multilabel_report"]
