"""Evaluation: resynthesise a test set with several systems, score it, write tables, plots and a listening page."""
from wavediff.evaluation.runner import METRICS, EvaluationReport, evaluate

__all__ = ["METRICS", "EvaluationReport", "evaluate"]
