"""lmnt-com/diffwave's model and train step for a wall-clock budget, written as a wavediff
checkpoint so that ``wavediff evaluate`` scores it beside wavediff's own recipes.

Only ``diffwave.model`` is imported from lmnt-com/diffwave 0.1.7 (``pip install --no-deps
diffwave==0.1.7``). Its train step as its ``learner.py`` does it: t uniform, ``x_t = sqrt(abar)
x0 + sqrt(1 - abar) eps``, L1 loss on eps, Adam, fp32, no EMA. The data are wavediff's loader
over the same files, crops and seed as the other setups; the learning rate and batch are the
preset's. Its weights map one to one onto wavediff's DiffWave (same layers, other names); the
mapping is checked by running both networks on the same input (:func:`check_mapping`). One
numerical difference remains: lmnt tabulates its step embedding in float32, wavediff in
float64, so the converted model sees embeddings off by up to 0.023 in the highest frequencies.

    python benchmarks/lmnt_train.py --data speech22k/train.tsv --out runs/recipe/lmnt-seed0 --minutes 8
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from types import SimpleNamespace

import torch

from wavediff.config import PAPER_RECIPE, load_config
from wavediff.models.diffwave import build_model
from wavediff.checkpoint import save_checkpoint
from wavediff.training.trainer import Trainer

log = logging.getLogger("lmnt_train")

RENAMES = (("diffusion_embedding.projection1.", "step_embedding.fc1."),
           ("diffusion_embedding.projection2.", "step_embedding.fc2."),
           ("spectrogram_upsampler.conv1.", "upsampler.stages.0."),
           ("spectrogram_upsampler.conv2.", "upsampler.stages.1."),
           ("residual_layers.", "layers."), (".diffusion_projection.", ".step_projection."),
           (".conditioner_projection.", ".cond_projection."))


def to_wavediff_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        for old, new in RENAMES:
            key = key.replace(old, new)
        out[key] = value.detach().clone()
    return out


def lmnt_model_and_step(config, device: torch.device):
    """lmnt-com/diffwave's ``DiffWave`` for ``config``'s sizes and schedule, and its train step as
    its ``learner.py``: t uniform, ``x_t = sqrt(abar) x0 + sqrt(1 - abar) eps``, L1 loss, Adam at
    the config's learning rate, gradient norm clipped at 1e9 (its ``max_grad_norm`` None), fp32.
    Returns ``(model, step)``; ``step(batch)`` runs one optimiser step and returns the loss."""
    from diffwave.model import DiffWave as LmntDiffWave

    d = config.diffusion
    betas = torch.linspace(d.beta_start, d.beta_end, d.num_steps)
    params = SimpleNamespace(residual_channels=config.model.residual_channels,
                             residual_layers=config.model.residual_layers,
                             dilation_cycle_length=config.model.dilation_cycle, n_mels=config.mel.n_mels,
                             noise_schedule=betas.tolist(), unconditional=False)
    model = LmntDiffWave(params).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.train.learning_rate)
    abar = torch.cumprod(1 - betas, 0).to(device)
    loss_fn = torch.nn.L1Loss()

    def step(batch) -> torch.Tensor:
        audio = batch["audio"].to(device)
        mel = batch["mel"].to(device)
        model.train()
        opt.zero_grad(set_to_none=True)
        t = torch.randint(0, d.num_steps, (audio.shape[0],), device=device)
        scale = abar[t].unsqueeze(1)
        noise = torch.randn_like(audio)
        noisy = scale.sqrt() * audio + (1 - scale).sqrt() * noise
        loss = loss_fn(noise, model(noisy, mel, t).squeeze(1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1e9)
        opt.step()
        return loss.detach()
    return model, step


def check_mapping(model: torch.nn.Module, weights: dict[str, torch.Tensor], config) -> tuple[float, float]:
    """Both networks on the same input with the same weights: the largest difference of their
    predictions with lmnt's step-embedding table recomputed in float64 (must be float rounding:
    the mapping is exact), and with lmnt's own float32 table (whose high-frequency sinusoids of
    ``n * 10^(4j/63)`` are off by up to 0.023 at n = 49; wavediff computes them in float64)."""
    ours = build_model(config).eval()
    ours.load_state_dict(weights)
    model.eval()
    x = torch.randn(2, 16 * config.mel.hop_length, generator=torch.Generator().manual_seed(0))
    mel = torch.rand(2, config.mel.n_mels, 16, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([3, config.diffusion.num_steps - 1])
    with torch.no_grad():
        want = ours(x, t.float(), mel=mel)
        lmnt_table = model.diffusion_embedding.embedding
        diff = float((model(x, mel, t).squeeze(1) - want).abs().max())
        steps = torch.arange(lmnt_table.shape[0], dtype=torch.float64).unsqueeze(1)
        angles = steps * 10.0 ** (torch.arange(64, dtype=torch.float64).unsqueeze(0) * 4.0 / 63.0)
        model.diffusion_embedding.embedding = torch.cat([angles.sin(), angles.cos()], 1).float()
        exact = float((model(x, mel, t).squeeze(1) - want).abs().max())
        model.diffusion_embedding.embedding = lmnt_table
    if exact > 1e-4:
        raise SystemExit(f"lmnt's and wavediff's networks differ by {exact:.2e} on the same weights and embedding")
    return exact, diff


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True, help="run folder (checkpoints/, budget in lmnt.json)")
    ap.add_argument("--minutes", type=float, required=True)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    config = load_config(args.preset, [f"train.seed={args.seed}", "train.precision=fp32", "diffusion.loss=l1",
                                         *PAPER_RECIPE])   # lmnt's recipe is the paper's, not tiny's defaults
    out = Path(args.out)
    trainer = Trainer(config, args.data, out, device="cpu", progress=False, workers=0)
    torch.manual_seed(args.seed)
    model, train_step = lmnt_model_and_step(config, torch.device("cpu"))
    loader, sampler = trainer._loader()
    step, epoch, t0 = 0, 0, time.time()
    losses = []
    while time.time() - t0 < args.minutes * 60:
        sampler.set_epoch(epoch)
        for batch in loader:
            loss = train_step(batch)
            step += 1
            losses.append(loss.item())
            if step % 100 == 0:
                log.info("step %d, L1 loss %.4f (mean of the last 100)", step, sum(losses[-100:]) / 100)
            if time.time() - t0 >= args.minutes * 60:
                break
        epoch += 1
    wall = time.time() - t0
    weights = to_wavediff_names(model.state_dict())
    save_checkpoint(out / "checkpoints", step, config, weights, None, keep_last=1)
    exact, diff = check_mapping(model, weights, config)
    (out / "lmnt.json").write_text(json.dumps({"steps": step, "wall_minutes": wall / 60, "final_loss_l1":
                                               sum(losses[-100:]) / max(1, len(losses[-100:])),
                                               "max_difference_same_embedding": exact,
                                               "max_difference_lmnt_float32_embedding": diff}))
    log.info("lmnt-com/diffwave: %d steps in %.1f min; checkpoint in %s (networks agree to %.1e with the same "
             "embedding table, %.1e with lmnt's float32 one)", step, wall / 60, out, exact, diff)


if __name__ == "__main__":
    main()
