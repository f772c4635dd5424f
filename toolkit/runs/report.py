"""What a person looks at: training curves as PNG, and ``toolkit report``'s HTML page.

The report is one self-contained HTML file (images inlined, no script, no network):
each run's figures, curves, samples or attribution tables beside the n-gram baseline,
and its config; given several runs, a table compares them first.
"""

from __future__ import annotations

import base64
import html
import json
import time
from pathlib import Path

from toolkit.runs import rundir as runs
from toolkit.errors import ToolkitError
from toolkit.runs.rundir import Run


def loss_columns(rows: list[dict]) -> tuple[str, str]:
    """The training and validation figure to draw: nats per token where logged, else loss."""
    return ("nats", "val_nats") if rows and "nats" in rows[0] else ("loss", "val_loss")


def save_curves(run: Run, path: Path) -> bool:
    """Training curves per epoch and against training minutes (accuracy too when logged),
    written atomically as PNG; ``False`` when the run has no history yet."""
    rows = run.history
    if not rows:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter, MaxNLocator

    train, val = loss_columns(rows)
    panels = [(train, val, "nats per token" if train == "nats" else "loss")]
    if "accuracy" in rows[0]:
        panels.append(("accuracy", "val_accuracy", "accuracy"))
    figure, axes = plt.subplots(len(panels), 2, figsize=(10, 3.4 * len(panels)), squeeze=False)
    epochs = [int(r["epoch"]) + 1 for r in rows]
    minutes = [float(r.get("elapsed_minutes", 0.0)) for r in rows]
    # A run of a minute or two reads better in seconds than in fractions of a minute.
    clock, clock_label = ((minutes, "training minutes") if max(minutes, default=0) >= 2
                          else ([m * 60 for m in minutes], "training seconds"))
    for row_axes, (train_key, val_key, label) in zip(axes, panels):
        for ax, xs, xlabel in ((row_axes[0], epochs, "epoch"),
                               (row_axes[1], clock, clock_label)):
            for key, name in ((train_key, "training"), (val_key, "validation")):
                points = [(x, r[key]) for x, r in zip(xs, rows) if key in r]
                if points:
                    ax.plot(*zip(*points), marker="o", markersize=3, label=name)
            ax.set_xlabel(xlabel)
            # Few ticks, plain numbers: short runs had labels running into each other.
            ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=xlabel == "epoch"))
            ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
            ax.legend()
    figure.suptitle(f"{run.path.name}: training curves")
    figure.tight_layout()
    tmp = path.with_name(f".{path.stem}{runs.TMP_SUFFIX}.png")
    figure.savefig(tmp, dpi=110)
    plt.close(figure)
    runs.replace_durably(tmp, path)
    return True


def image_tag(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img class="figure" alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def table(header: list[str], rows: list[list], css: str = "") -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(fmt(c))}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else str(value)


def read_json(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


def summary_row(run: Run) -> list:
    """One line of the comparison table."""
    metrics = read_json(run.file(runs.METRICS)) or {}
    evaluation = read_json(run.file(runs.EVALUATION)) or {}
    validation = metrics.get("validation", {})
    lstm = evaluation.get("lstm", {})
    return [run.path.name, run.config.head.use, metrics.get("epochs_done"),
            metrics.get("training_minutes"), validation_figure(validation),
            lstm.get("accuracy"), evaluation.get("baseline", {}).get("accuracy"),
            whole_number(metrics.get("train_tokens_per_second_median"))]


def validation_figure(validation: dict) -> str:
    """The run's main validation figure with its unit, for a table that mixes heads."""
    for key, unit in (("nats_per_token", "nats/token"), ("macro_f1", "macro-F1"),
                      ("accuracy", "accuracy"), ("loss", "loss")):
        if key in validation:
            return f"{validation[key]:.4f} {unit}"
    return ""


def whole_number(value) -> str:
    """``2777.9`` -> ``"2,778"``: rates read as whole numbers with thousands separators."""
    return "" if value is None else f"{round(float(value)):,}"


def run_section(run: Run, index: int) -> str:
    """One run: figures, curves, samples, attribution tables, config."""
    metrics = read_json(run.file(runs.METRICS)) or {}
    parts = [f'<section class="run" id="run-{index}"><h2>{html.escape(run.path.name)}</h2>',
             f'<p class="path">{html.escape(str(run.path))}: {html.escape(run.config.head.use)}'
             f' head, {html.escape(run.config.corpus.use)} corpus, '
             f'{metrics.get("epochs_done", "?")} epochs, '
             f'{metrics.get("training_minutes", "?")} training minutes</p>']
    validation = metrics.get("validation")
    if validation:
        parts += ["<h3>Validation</h3>",
                  table(list(validation), [list(validation.values())], "figures")]
    curves = run.file(runs.CURVES)
    if curves.is_file() or save_curves(run, curves):
        parts += ["<h3>Training curves</h3>", image_tag(curves, f"{run.path.name} curves")]
    samples = read_json(run.file(runs.SAMPLES))
    if samples:
        parts.append("<h3>Samples</h3>")
        for sample in samples[-3:]:
            parts.append(f'<p class="caption">after epoch {sample["epoch"] + 1}</p>'
                         f'<pre class="sample">{html.escape(sample["text"])}</pre>')
    evaluation = read_json(run.file(runs.EVALUATION))
    if evaluation and evaluation.get("kind") == "attribution":
        models = [(name, evaluation.get(key)) for key, name in (
            ("lstm", "LSTM"), ("lstm_calibrated", "LSTM, calibrated"),
            ("lstm_transductive", "LSTM, on-split offsets"), ("baseline", "char n-grams"),
            ("burrows_delta", "Burrows' Delta"), ("cosine_delta", "Cosine Delta"),
            ("ensemble", "ensemble"))]
        parts += [f'<h3>Attribution, {html.escape(evaluation["split"])} split '
                  f'({evaluation["passages"]} passages)</h3>',
                  figures_table([(name, r) for name, r in models if r is not None]),
                  comparisons_table(evaluation.get("comparisons"),
                                    {key: name for key, name in (
                                        ("lstm", "LSTM"), ("lstm_calibrated", "LSTM, calibrated"),
                                        ("ensemble", "ensemble"))}),
                  table(["author", "precision", "recall", "F1", "passages"],
                        [[a, r["precision"], r["recall"], r["f1"], r["passages"]]
                         for a, r in evaluation["lstm"]["per_author"].items()], "authors")]
        pictures = [image_tag(run.file(name), f"{run.path.name} {Path(name).stem}")
                    for name in (runs.CONFUSION, runs.RELIABILITY) if run.file(name).is_file()]
        if pictures:  # side by side, each at most half the page wide
            parts.append(f'<div class="pair">{"".join(pictures)}</div>')
    elif evaluation:
        parts += [f'<h3>Evaluation, {html.escape(evaluation["split"])} split</h3>',
                  f'<p>{html.escape(evaluation.get("summary", ""))}</p>']
    parts += ["<details><summary>Config</summary>",
              f'<pre class="config">{html.escape(run.file(runs.CONFIG).read_text())}</pre>'
              "</details></section>"]
    return "\n".join(parts)


def with_interval(value, bounds) -> str:
    if value is None:
        return ""
    return f"{value:.4f}" if not bounds else f"{value:.4f} [{bounds[0]:.3f}, {bounds[1]:.3f}]"


def figures_table(models: list[tuple[str, dict]]) -> str:
    """Attribution figures, each with its 95 % interval over documents where it has one."""
    rows = []
    for name, r in models:
        documents = r.get("documents", {})
        rows.append([name, with_interval(r["accuracy"], r.get("accuracy_ci")),
                     with_interval(r["macro_f1"], r.get("macro_f1_ci")), r.get("ece", ""),
                     documents.get("count", ""),
                     with_interval(documents.get("accuracy"), documents.get("accuracy_ci"))])
    return table(["model", "accuracy [95% CI]", "macro-F1 [95% CI]", "ECE", "documents",
                  "document accuracy [95% CI]"], rows, "attribution")


def comparisons_table(comparisons: dict | None, names: dict) -> str:
    """Each model minus the best classic baseline, paired on the same documents."""
    if not comparisons:
        return ""
    rows = []
    for key, name in names.items():
        c = comparisons.get(key)
        if c is not None:
            m = c["mcnemar_documents"]
            rows.append([name, f"{c['accuracy']:+.4f} [{c['accuracy_ci'][0]:+.3f}, "
                               f"{c['accuracy_ci'][1]:+.3f}]",
                         f"{c['document_accuracy']:+.4f} [{c['document_accuracy_ci'][0]:+.3f}, "
                         f"{c['document_accuracy_ci'][1]:+.3f}]",
                         f"{m['a_only']} vs {m['b_only']}, p = {m['p']:.3g}", c["verdict"]])
    return (f'<p class="caption">Against the best classic baseline '
            f'({html.escape(comparisons["against_name"])}), paired on the same documents '
            f'(McNemar: documents only this model gets right vs only the baseline):</p>'
            + table(["model", "Δ accuracy [95% CI]", "Δ document accuracy [95% CI]",
                     "McNemar on documents", "verdict"], rows, "comparisons"))


def crossval_section(folder: Path, index: int) -> str:
    """A ``toolkit crossval`` directory: pooled figures, comparisons and the open set."""
    results = json.loads((folder / runs.CROSSVAL).read_text())
    models = results["models"]
    open_set = results["open_set"]
    rows = []
    for key in ("lstm_calibrated", "ensemble", "ensemble_folds"):
        f = open_set.get(key)
        if f is not None:
            rows.append([models[key]["name"], f.get("auroc"), f"{f['known_unknown']:.0%}",
                         "" if "strangers_unknown" not in f else f"{f['strangers_unknown']:.0%}"])
    return "\n".join([
        f'<section class="run" id="run-{index}"><h2>{html.escape(folder.name)}: '
        f'Cross-validated over documents</h2>',
        f'<p class="path">{html.escape(str(folder))}: {results["folds"]} folds, '
        f'{results["documents"]} documents by {len(results["authors"])} authors, '
        f'{results["passages"]} passages, each tested once by a run that never read it; '
        f'{results["training_minutes"]} training minutes in all. Intervals: '
        f'{html.escape(results["intervals"])}.</p>',
        figures_table([(m["name"], m) for m in models.values()]),
        comparisons_table(results["comparisons"],
                          {key: models[key]["name"] for key in results["comparisons"]
                           if key in models}),
        f'<h3>Open set: {open_set["stranger_documents"]} documents by authors outside the '
        f'folds</h3>',
        table(["model", "AUROC", "known answered unknown", "strangers answered unknown"],
              rows, "open-set"),
        "</section>"])


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 68rem; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
pre { background: #f6f6f6; padding: 0.6rem; white-space: pre-wrap; overflow-wrap: anywhere; }
img.figure { max-width: 100%; display: block; margin: 0.5rem 0; }
div.pair { display: flex; gap: 1rem; align-items: flex-start; }
div.pair img.figure { width: 26rem; max-width: calc(50% - 0.5rem); height: auto; }
table { max-width: 100%; }
section.run { border-top: 2px solid #ddd; margin-top: 2rem; }
.path, .caption { color: #666; }
"""


def render(run_dirs: list[str | Path]) -> str:
    """The HTML report of one or more runs."""
    crossvals = [Path(p) for p in run_dirs if (Path(p) / runs.CROSSVAL).is_file()]
    opened = [Run.open(path) for path in run_dirs if Path(path) not in crossvals]
    title = ", ".join([*(f.name for f in crossvals), *(run.path.name for run in opened)])
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>Report: {html.escape(title)}</title><style>{STYLE}</style></head><body>",
             f"<h1>Report: {html.escape(title)}</h1>",
             f'<p class="path">written {time.strftime("%Y-%m-%d %H:%M")}</p>']
    if len(opened) > 1:
        parts += ["<h2>Side by side</h2>", table(
            ["run", "head", "epochs", "training minutes", "validation figure",
             "test accuracy", "baseline accuracy", "tokens/s"],
            [summary_row(run) for run in opened], "compare")]
    parts += [crossval_section(folder, i) for i, folder in enumerate(crossvals)]
    parts += [run_section(run, len(crossvals) + i) for i, run in enumerate(opened)]
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(run_dirs: list[str | Path], output: str | Path | None = None) -> Path:
    """Write the report (default: ``report.html`` inside the only run, else ``report.html``)."""
    if not run_dirs:
        raise ToolkitError("give at least one run directory to report on")
    if output is None:
        output = Path(run_dirs[0]) / runs.REPORT if len(run_dirs) == 1 else runs.REPORT
    output = Path(output)
    runs.atomic_write(output, render(run_dirs))
    return output
