"""wavediff.evaluation.plots: training curves read from a run folder, a cut last line tolerated."""
from __future__ import annotations

import numpy as np

from wavediff.evaluation.plots import read_training_curves


def test_training_curves_are_read_from_the_run_folder(evaluation_runs):
    _, _, run_a, _ = evaluation_runs
    curves = read_training_curves(run_a)
    np.testing.assert_allclose(curves["loss"][:, 1], [1.0 / s for s in range(1, 8)])
    np.testing.assert_allclose(curves["val_loss_ema"], [[4, 0.25]])  # the cut-off last line is skipped
    np.testing.assert_allclose(read_training_curves(run_a / "checkpoints" / "step_00000007")["val_loss"], [[4, 0.3]])
