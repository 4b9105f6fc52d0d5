"""Write an evaluation as Markdown, plots and a static HTML listening page.

The page (``index.html``) is self-contained apart from the report folder's own audio and
images, which it links by relative paths, so the folder can be copied or served as is.
"""
from __future__ import annotations

import html
import logging
from pathlib import Path

import numpy as np

from wavediff.config import SamplerConfig
from wavediff.evaluation.plots import plot_metrics_vs_steps, plot_training_curves
from wavediff.evaluation.runner import METRICS, EvaluationReport, SystemResult
from wavediff.evaluation.stats import Summary

log = logging.getLogger(__name__)

ARROW = {"lower": "↓", "higher": "↑"}


def _cell(s: Summary, digits: int = 3) -> str:
    if not np.isfinite(s.mean):
        return "n/a"
    ci = f" ± {s.ci95:.{digits}f}" if np.isfinite(s.ci95) else ""
    return f"{s.mean:.{digits}f}{ci}"


def _best(systems: list[SystemResult]) -> dict[str, str]:
    """Per metric, the slug of the best mean."""
    best = {}
    for m in METRICS:
        candidates = [(s.metrics[m.key].mean, s.spec.slug) for s in systems if np.isfinite(s.metrics[m.key].mean)]
        if candidates:
            best[m.key] = (min if m.better == "lower" else max)(candidates)[1]
    return best


def markdown_table(report: EvaluationReport) -> str:
    """Mean ± 95% CI per system and metric, then the real-time factor."""
    lines = ["| system | " + " | ".join(f"{m.label} {ARROW[m.better]}" for m in METRICS) + " | RTF |",
             "| --- | " + " | ".join("---:" for _ in METRICS) + " | ---: |"]
    for s in report.systems:
        lines.append(f"| {s.spec.name} | " + " | ".join(_cell(s.metrics[m.key]) for m in METRICS)
                     + f" | {s.rtf:.3f} |")
    return "\n".join(lines)


def describe_sampler(sampler: SamplerConfig) -> str:
    """``sampler``'s every setting in words, e.g. "from noise; Griffin-Lim consistency at the 6 noisiest
    steps, 16 iterations each" (a variant overrides only some keys of each checkpoint's own sampler, so
    the effective settings can differ between checkpoints under one label)."""
    start = ("from noise" if sampler.start == "noise" else
             f"the last {sampler.start_steps} steps from a noised Griffin-Lim estimate ({sampler.griffin_lim_iters} "
             "iterations)")
    consistency = ("no consistency step" if sampler.consistency == "none" else
                   f"Griffin-Lim consistency at the {sampler.consistency_steps} noisiest steps, "
                   f"{sampler.consistency_iters} iteration{'s' if sampler.consistency_iters > 1 else ''} each")
    rule = {"ancestral": "", "ddim": f"; DDIM steps (eta {sampler.ddim_eta:g})",
            "dpm-solver": "; DPM-Solver++(2M) steps"}[sampler.method]
    return f"{start}; {consistency}{rule}"


SCORED_BELOW = ("scored below {hz:g} Hz: the recording and every system's audio low-passed there before "
                "every metric (the audio on the page is full band)")


def markdown_report(report: EvaluationReport) -> str:
    meta = report.meta
    head = [
        f"# Evaluation, {meta['date']}",
        "",
        f"- data: `{meta['data']}`, {meta['utterances']} utterances, {meta['audio_seconds']:.1f} s at "
        f"{meta['sample_rate']} Hz",
        f"- machine: {meta['machine']}, device {meta['device']}, {meta['torch_threads']} torch threads",
    ]
    for c in meta["checkpoints"]:
        head.append(f"- checkpoint `{c['name']}`: {c['checkpoint']} ({c.get('family', 'diffwave')}, {c['preset']} preset, "
                    f"step {c['step']}, "
                    f"{c['parameters']:,} parameters, T={c['diffusion_steps_T']})")
    for s in report.systems:
        if s.spec.sampler is not None:
            chain = f"; chain: {s.spec.chain}" if s.spec.chain else ""
            head.append(f"- sampler of `{s.spec.name}`: {describe_sampler(s.spec.sampler)}{chain}")
    if meta.get("score_max_hz"):
        head.append(f"- {SCORED_BELOW.format(hz=meta['score_max_hz'])}")
    if meta.get("command"):
        head.append(f"- command: `{meta['command']}`")
    head += ["", markdown_table(report), "",
             f"Mean ± half-width of the {meta['confidence_interval']}. RTF: synthesis seconds per second of audio.",
             "", "Metrics:", ""]
    head += [f"- **{m.label}** ({m.better} is better): {m.definition}" for m in METRICS]
    return "\n".join(head) + "\n"


_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1400px; color: #222; }
table { border-collapse: collapse; margin: 0.6em 0; }
th, td { border: 1px solid #ccc; padding: 3px 7px; font-size: 13px; vertical-align: middle; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.best { font-weight: bold; background: #eef7ee; }
img.spec { height: 90px; width: 420px; image-rendering: auto; display: block; }
audio { width: 260px; height: 32px; }
section.utt { margin-top: 1.6em; }
.meta li { font-size: 13px; }
img.plot { max-width: 100%; border: 1px solid #ddd; }
"""


def _metric_table_html(report: EvaluationReport) -> str:
    best = _best(report.systems)
    head = "".join(f"<th>{html.escape(m.label)} {ARROW[m.better]}</th>" for m in METRICS)
    rows = []
    for s in report.systems:
        cells = "".join(
            f'<td class="num{" best" if best.get(m.key) == s.spec.slug else ""}">{html.escape(_cell(s.metrics[m.key]))}'
            f"</td>" for m in METRICS)
        rows.append(f"<tr><td>{html.escape(s.spec.name)}</td>{cells}<td class='num'>{s.rtf:.3f}</td></tr>")
    return f"<table><tr><th>system</th>{head}<th>RTF</th></tr>{''.join(rows)}</table>"


def listening_page(report: EvaluationReport, plots: list[str]) -> str:
    meta = report.meta
    names = {"recording": "Recording"} | {s.spec.slug: s.spec.name for s in report.systems}
    items = [f"<li>data: <code>{html.escape(meta['data'])}</code>, {meta['utterances']} utterances, "
             f"{meta['audio_seconds']:.1f} s at {meta['sample_rate']} Hz</li>",
             f"<li>machine: {html.escape(meta['machine'])}, device {html.escape(meta['device'])}, "
             f"{meta['torch_threads']} torch threads; {html.escape(meta['date'])}</li>"]
    for c in meta["checkpoints"]:
        items.append(f"<li>checkpoint <b>{html.escape(c['name'])}</b>: <code>{html.escape(c['checkpoint'])}</code> "
                     f"({html.escape(str(c['preset']))} preset, step {c['step']}, {c['parameters']:,} parameters)</li>")
    if meta.get("score_max_hz"):
        items.append(f"<li>{html.escape(SCORED_BELOW.format(hz=meta['score_max_hz']))}</li>")
    if meta.get("command"):
        items.append(f"<li>command: <code>{html.escape(meta['command'])}</code></li>")
    defs = "".join(f"<li><b>{html.escape(m.label)}</b> ({m.better} is better): {html.escape(m.definition)}</li>"
                   for m in METRICS)
    plot_html = "".join(f'<p><img class="plot" src="{html.escape(p)}" alt="{html.escape(p)}"></p>' for p in plots)
    sections = []
    for u in report.utterances:
        rows = []
        for slug in ["recording", *[s.spec.slug for s in report.systems]]:
            scores = u.scores.get(slug)
            score_text = "" if scores is None else ", ".join(
                f"{m.label} {scores[m.key]:.2f}" for m in METRICS if np.isfinite(scores[m.key]))
            rows.append(
                f"<tr><td>{html.escape(names[slug])}</td>"
                f'<td><audio controls preload="metadata" src="{html.escape(u.audio[slug])}"></audio></td>'
                f'<td><img class="spec" src="{html.escape(u.spectrogram[slug])}" '
                f'alt="log-mel spectrogram, {html.escape(names[slug])}"></td>'
                f"<td style='font-size:12px'>{html.escape(score_text)}</td></tr>")
        sections.append(f'<section class="utt" id="{html.escape(u.id)}"><h3>{html.escape(u.id)} '
                        f"<small>({u.duration_s:.2f} s)</small></h3>"
                        f"<table><tr><th>system</th><th>audio</th><th>log-mel spectrogram</th><th>scores</th></tr>"
                        f"{''.join(rows)}</table></section>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>wavediff evaluation, {html.escape(meta['date'])}</title>
<style>{_CSS}</style></head>
<body>
<h1>wavediff evaluation</h1>
<ul class="meta">{''.join(items)}</ul>
<h2>Scores</h2>
<p>Mean ± half-width of the {html.escape(meta['confidence_interval'])}; best per column in bold.
Each system resynthesises every recording from its mel; RTF = synthesis seconds per second of audio.</p>
{_metric_table_html(report)}
<details><summary>Metric definitions</summary><ul>{defs}</ul></details>
<h2>Plots</h2>
{plot_html}
<h2>Samples</h2>
{''.join(sections)}
</body></html>
"""


def write_report(report: EvaluationReport, out: str | Path) -> dict[str, Path]:
    """Write ``results.md``, ``metrics_vs_steps.png``, ``training_curves.png`` (when the runs have
    ``metrics.jsonl``) and ``index.html`` into ``out``; returns their paths by name."""
    out = Path(out)
    written: dict[str, Path] = {}
    (out / "results.md").write_text(markdown_report(report))
    written["markdown"] = out / "results.md"
    plots = []
    written["metrics_vs_steps"] = plot_metrics_vs_steps(report, out / "metrics_vs_steps.png")
    plots.append("metrics_vs_steps.png")
    runs, names = [], []
    for c in report.meta["checkpoints"]:
        run = Path(c["checkpoint"])
        run = run.parent.parent if run.parent.name == "checkpoints" else run
        if (run / "metrics.jsonl").is_file():
            runs.append(run)
            names.append(c["name"])
    if runs:
        written["training_curves"] = plot_training_curves(runs, out / "training_curves.png", names)
        plots.append("training_curves.png")
    (out / "index.html").write_text(listening_page(report, plots))
    written["page"] = out / "index.html"
    return written
