"""The main job: vocode with the bundled vocoder, make a corpus, train ``tiny``, vocode held-out
audio, compare with Griffin-Lim and the bundled vocoder.

``wavediff demo --out demo_out --minutes 4`` writes:

- ``bundled/``: the held-out utterances resynthesised by the vocoder shipped in the package
  (:mod:`wavediff.pretrained`), before any training, so there is something to hear in seconds;
- ``data/train``, ``data/test``: the synthetic corpus (source-filter speech-like signals);
- ``run/``: the training run (checkpoints, TensorBoard, metrics);
- ``report/``: the ``wavediff evaluate`` report of Griffin-Lim (32 iterations), the bundled
  vocoder and the demo's DiffWave with 6 and 50 steps on the held-out utterances: ``index.html`` (listening page), audio,
  ``results.md`` / ``results.json`` (every metric with its 95% interval, real-time factor), plots;
- ``spectrograms.png``: the log-mel spectrograms of the first test utterance;
- ``results.md``: the score table.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from wavediff.audio.io import load_audio
from wavediff.config import load_config
from wavediff.data.synthetic import make_corpus
from wavediff.evaluation.report import markdown_table, write_report
from wavediff.evaluation.runner import evaluate
from wavediff.pipelines import Vocoder, vocode_files
from wavediff.pretrained import bundled_model
from wavediff.checkpoint import list_checkpoints
from wavediff.training.trainer import Trainer

log = logging.getLogger(__name__)


def plot_spectrograms(waves: dict[str, np.ndarray], vocoder: Vocoder, path: Path) -> None:
    """One log-mel panel per system for the same utterance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(waves), 1, figsize=(10, 2.2 * len(waves)), sharex=True)
    hop_s = vocoder.hop_length / vocoder.sample_rate
    for ax, (name, wav) in zip(np.atleast_1d(axes), waves.items()):
        mel = vocoder.frontend.mel_magnitude(torch.from_numpy(wav).unsqueeze(0))[0].clamp(min=1e-5).log10() * 20
        ax.imshow(mel.numpy(), origin="lower", aspect="auto", vmin=float(mel.max()) - 80, vmax=float(mel.max()),
                  extent=(0, mel.shape[-1] * hop_s, 0, mel.shape[0]), cmap="magma")
        ax.set_title(name, fontsize=10)
        ax.set_ylabel("mel band")
    np.atleast_1d(axes)[-1].set_xlabel("time (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_demo(out: Path, minutes: float = 4.0, seed: int = 0, device: str = "auto", num_train: int = 60,
             num_test: int = 4) -> str:
    """Run the whole demo; returns the results table (also written to ``out/results.md``)."""
    out.mkdir(parents=True, exist_ok=True)
    train_dir, test_dir = out / "data" / "train", out / "data" / "test"
    if not (train_dir.is_dir() and any(train_dir.iterdir())):
        log.info("synthesising a speech-like corpus in %s", out / "data")
        make_corpus(out / "data", num_train=num_train, num_test=num_test, seed=seed)
    bundled = bundled_model()
    log.info("vocoding the held-out utterances with the bundled vocoder %s (%s)", bundled.name, bundled.summary)
    written = vocode_files(Vocoder.pretrained(bundled.name, device=device), [test_dir], out / "bundled", seed=seed)
    log.info("listen: %d file(s) in %s", len(written), out / "bundled")
    run_dir = out / "run"
    resume = bool(list_checkpoints(run_dir / "checkpoints"))
    if resume:
        log.info("continuing the earlier demo run in %s", run_dir)
    config = load_config("tiny", [f"train.seed={seed}"])
    log.info("training the tiny preset for %.1f minutes", minutes)
    trainer = Trainer(config, train_dir, run_dir, resume=resume, device=device, max_minutes=minutes)
    result = trainer.fit()
    report_dir = out / "report"
    report = evaluate([str(run_dir), str(bundled.path)], test_dir, report_dir, steps=(6, 50), gl_iters=(32,),
                      seed=seed, device=device, labels=["DiffWave tiny", f"bundled {bundled.name}"],
                      command=f"wavediff demo --out {out} --minutes {minutes:g}")
    write_report(report, report_dir)
    first = report.utterances[0]
    names = {"recording": "Recording"} | {s.spec.slug: s.spec.name for s in report.systems}
    waves = {names[slug]: load_audio(report_dir / rel, report.meta["sample_rate"]) for slug, rel in first.audio.items()}
    plot_spectrograms(waves, Vocoder.from_checkpoint(run_dir, device="cpu"), out / "spectrograms.png")
    table = markdown_table(report)
    header = (f"wavediff demo: tiny preset, {result.final_step} training steps ({minutes:g} min budget), "
              f"{len(report.utterances)} held-out synthetic utterances; the bundled {bundled.name} beside it "
              f"({bundled.card.get('budget', 'budget not recorded')})")
    note = ("Mean ± 95% confidence interval over utterances. Both DiffWave models sample with the tiny preset's "
            "consistency step (16 Griffin-Lim iterations onto the mel's magnitude at every step), which carries "
            "much of their score: a few CPU minutes are a tiny fraction of the paper's training (1M steps on 8 "
            "GPUs), and without it (`wavediff evaluate --sampler plain:consistency=none`) the demo's network alone "
            "still outputs noise. Train longer with --minutes, or on real speech with `wavediff train`. The bundled "
            "vocoder was trained on real speech, not on this synthetic corpus (`wavediff models` shows its card). "
            "Listen: " + str(report_dir / "index.html"))
    table = table + "\n\n" + note
    (out / "results.md").write_text(header + "\n\n" + table + "\n")
    log.info("wrote %s, %s and %s", report_dir, out / "spectrograms.png", out / "results.md")
    return header + "\n\n" + table
