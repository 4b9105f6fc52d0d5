"""Fast inference: folded weights, the network's kernels and the reverse-chain engine
(one pass, chunks or streaming)."""
from wavediff.inference.engine import InferenceEngine
from wavediff.inference.folding import FoldedDiffWave, quantize_int8
from wavediff.inference.mode import EngineMode

__all__ = ["EngineMode", "InferenceEngine", "FoldedDiffWave", "quantize_int8"]
