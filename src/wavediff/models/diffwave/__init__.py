"""DiffWave (Kong et al., ICLR 2021): the network, its fused training path, its training
objective and its vocoding, as one model family (:mod:`wavediff.models.family`)."""
from wavediff.models.diffwave.network import IMPLEMENTATIONS, DiffWave, ResidualLayer, build_model, count_parameters, describe

__all__ = ["DiffWave", "IMPLEMENTATIONS", "ResidualLayer", "build_model", "count_parameters", "describe"]
