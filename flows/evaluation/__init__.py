"""evaluation: reports that score trained models against baselines (FITB / compatibility, neighbour
precision, same-garment structure retrieval)."""

from flows.evaluation.run import REPORTS, evaluate_kind

__all__ = ["REPORTS", "evaluate_kind"]
