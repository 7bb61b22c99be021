"""Metrics and, later, the few-shot evaluation protocol."""

from .metrics import classification_report, multilabel_report

__all__ = ["classification_report", "multilabel_report"]
