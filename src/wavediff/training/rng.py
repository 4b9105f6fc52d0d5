"""The process-global random number generators as tensors, to save in and restore from checkpoints.

Training itself draws every random number from generators seeded by ``(seed, step, slot)``
(see :mod:`wavediff.data.sampling`), so it does not depend on these states; they are kept so
that anything else drawing from the global generators (a user's model with dropout, a
callback) also continues exactly after a resume. Everything is an integer tensor, so the
training state stays loadable with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import random

import numpy as np
import torch


def capture_rng_state() -> dict[str, torch.Tensor]:
    """torch (CPU and, if used, CUDA), numpy and Python ``random`` states, as 1-D tensors."""
    version, words, gauss = random.getstate()
    py = torch.tensor([version, *words, -1 if gauss is None else 1], dtype=torch.int64)
    py_gauss = torch.tensor([0.0 if gauss is None else gauss], dtype=torch.float64)
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    assert kind == "MT19937"
    state = {
        "torch": torch.get_rng_state(),
        "python": py,
        "python_gauss": py_gauss,
        "numpy": torch.from_numpy(np.asarray([*keys.tolist(), pos, has_gauss], dtype=np.int64)),
        "numpy_gauss": torch.tensor([cached], dtype=torch.float64),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng_state(state: dict[str, torch.Tensor]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    torch.set_rng_state(state["torch"].to(torch.uint8).cpu())
    py = state["python"].tolist()
    gauss = None if py[-1] == -1 else float(state["python_gauss"][0])
    random.setstate((int(py[0]), tuple(int(w) for w in py[1:-1]), gauss))
    words = state["numpy"].tolist()
    np.random.set_state(("MT19937", np.asarray(words[:624], dtype=np.uint32), int(words[624]), int(words[625]),
                         float(state["numpy_gauss"][0])))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"].to(torch.uint8).cpu())
