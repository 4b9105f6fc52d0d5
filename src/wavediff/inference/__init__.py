"""Fast inference: folded weights and the chunked, batched reverse-chain engine."""
from wavediff.inference.engine import InferenceEngine
from wavediff.inference.folding import FoldedDiffWave, quantize_int8

__all__ = ["InferenceEngine", "FoldedDiffWave", "quantize_int8"]
