"""The Markdown of docs/results.md: one generated block per table, the invocation log, and the file's blocks.

Every generated block sits between `<!-- reproduce:begin KEY -->` and
`<!-- reproduce:end KEY -->`; `update_results_md` replaces those blocks and
keeps the hand-written text around them.

>>> pct(0.8513)
'85.1'
"""

import json
import os

from .grids import DEFAULT_BASELINES
from .grids import GOAL_UA
from .grids import ROOT
from .grids import speech_pairs
from .grids import table_iv_pairs
from .grids import table_rows
from .protocols import COMMAND
from .protocols import baseline_protocol
from .protocols import machine_label
from .protocols import probe_choices
from .protocols import protocol_text
from .protocols import public_command
from .protocols import run_key
from .runs import fold_stats
from .runs import paired
from .runs import per_class_recall
from .runs import pooled
from .runs import probe_grid


def pct(value):
    return f"{100 * value:.1f}"


def _signed(value):
    return f"{100 * value:+.1f}"


def _p(value):
    return f"{value:.3f}" if value >= 0.001 else f"{value:.1e}"


def folds_label(run, all_speakers):
    if all_speakers and run.speakers == sorted(all_speakers):
        return f"all {len(run.speakers)}"
    return f"{len(run.speakers)}: " + ",".join(run.speakers)


def _seconds_per_fold(run):
    times = [f["wall_time_s"] for f in run.folds.values() if f.get("wall_time_s")]
    return f"{sum(times) / len(times):.0f}" if times else ""


def _epochs(run):
    fits = {"probe", "svm"}  # one fit each (the probe, the openSMILE baselines' SVM): not epochs
    values = [sum(v for k, v in f["epochs"].items() if k not in fits)
              for f in run.folds.values() if isinstance(f.get("epochs"), dict) and not set(f["epochs"]) <= fits]
    return f"{sum(values) / len(values):.1f}" if values else ""


def table_markdown(table, rows, runs, all_speakers, reference=None):
    """The Markdown of one table from the loaded runs (`runs[name]` is a RunScores or None)."""
    lines = [
        "| configuration | folds | WA pooled | UA pooled | WA mean ± std | UA mean ± std | paper WA / UA "
        "| Δ WA / Δ UA vs ref (same folds) | p WA / p UA | epochs | s / fold | machine |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    missing = []
    ref_run = runs.get(reference) if reference else None
    for row in rows:
        run = runs.get(row.name)
        label = row.label + (" **[uses test-speaker audio]**" if row.uses_test_audio else "")
        if row.name == reference:
            label += " (ref)"
        paper = f"{row.paper[0]} / {row.paper[1]}" if row.paper else "-"
        if run is None or not run.folds:
            missing.append(row)
            lines.append(f"| {label} | not run | | | | | {paper} | | | | | |")
            continue
        wa, ua, _ = pooled(run)
        wa_mean, wa_std = fold_stats(run, "wa")
        ua_mean, ua_std = fold_stats(run, "ua")
        versus, p = "", ""
        if ref_run is not None and row.name != reference:
            test = paired(ref_run, run)
            if test:
                versus = (f"{_signed(test['wa']['pooled_b'] - test['wa']['pooled_a'])} / "
                          f"{_signed(test['ua']['pooled_b'] - test['ua']['pooled_a'])}"
                          + ("" if test["speakers"] == run.speakers == ref_run.speakers
                             else f" ({len(test['speakers'])} folds)"))
                p = f"{_p(test['wa']['p'])} / {_p(test['ua']['p'])}"
        lines.append(
            f"| {label} | {folds_label(run, all_speakers)} | **{pct(wa)}** | **{pct(ua)}** | "
            f"{pct(wa_mean)} ± {pct(wa_std)} | {pct(ua_mean)} ± {pct(ua_std)} | {paper} | {versus} | {p} | "
            f"{_epochs(run)} | {_seconds_per_fold(run)} | {machine_label(run.versions)} |")
    return lines, missing


def table_iv_markdown(runs, pairs, names):
    lines = [
        "| A | B | shared folds | WA: A / B pooled | Δ WA (mean of folds) | t | p | UA: A / B pooled "
        "| Δ UA (mean of folds) | t | p | significant (p < 0.05, UA) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for a, b in pairs:
        run_a, run_b = runs.get(a), runs.get(b)
        label_a, label_b = names.get(a, a), names.get(b, b)
        test = paired(run_a, run_b) if run_a and run_b else None
        if test is None:
            lines.append(f"| {label_a} | {label_b} | < 2 | | | | | | | | | not run |")
            continue
        wa, ua = test["wa"], test["ua"]
        lines.append(
            f"| {label_a} | {label_b} | {len(test['speakers'])} | {pct(wa['pooled_a'])} / {pct(wa['pooled_b'])} "
            f"| {_signed(wa['difference'])} | {wa['t']:.2f} | {_p(wa['p'])} | {pct(ua['pooled_a'])} / "
            f"{pct(ua['pooled_b'])} | {_signed(ua['difference'])} | {ua['t']:.2f} | {_p(ua['p'])} "
            f"| {'yes' if ua['p'] < 0.05 else 'no'} |")
    return lines


def recall_markdown(rows, runs, all_speakers):
    """One row per system that has results, one column per class: recall in %, pooled over its folds."""
    shown = [(row, runs.get(row.name)) for row in rows if runs.get(row.name) is not None and runs[row.name].folds]
    if not shown:
        return []
    classes = []
    for _, run in shown:
        classes += [name for name in run.class_names if name not in classes]
    lines = ["| system | folds | " + " | ".join(classes) + " | UA |", "|---|---|" + "---:|" * (len(classes) + 1)]
    for row, run in shown:
        recall = per_class_recall(run)
        cells = [pct(recall[name][0]) if recall.get(name, (None,))[0] is not None else "-" for name in classes]
        lines.append(f"| {row.label} | {folds_label(run, all_speakers)} | " + " | ".join(cells)
                     + f" | {pct(pooled(run)[1])} |")
    return lines


TITLES = {
    "II": "Table II: CNN+SRU for N = 1..5 segments, and the ensemble over N",
    "III": "Table III: CNN alone, SRU alone, CNN+SRU",
    "V": "Table V: openSMILE functionals + SVM against CNN+SRU",
    "levers": "Levers: each one on vs off, same folds",
    "imagenet": "ImageNet features for spectrograms: EfficientNet-Lite0 ImageNet vs random init vs AlexNet",
    "speech": "Pretrained speech encoder (GE2E, offline weights)",
    "IV": "Table IV style: paired t-tests between the main configurations",
}


def block_markdown(table, preset, run_root, runs, all_speakers, baselines_dir=DEFAULT_BASELINES):
    """The generated Markdown of one table (between the markers in docs/results.md)."""
    from keras_ser.training.config import encoder_models

    rows = table_rows(table, preset, baselines_dir)
    relative_root = os.path.relpath(run_root, ROOT)
    lines = [f"### {TITLES[table]} (preset `{preset}`, run folders `{relative_root}/`)", ""]
    if table == "IV":
        names = {row.name: row.name for row in rows}
        names.update({path: "IS09+SVM" if "is09" in path else "IS10+SVM" for path in
                      (os.path.join(baselines_dir, "emodb-is09-train"), os.path.join(baselines_dir, "emodb-is10-train"))})
        lines += table_iv_markdown(runs, table_iv_pairs(baselines_dir), names)
        lines += ["", "Δ = B - A in points, the mean of the per-fold differences; t and two-sided p of the paired "
                      "t-test over the shared folds (`scipy.stats.ttest_rel`, as `keras-ser compare`); pooled "
                      "figures are over the shared folds only. With few folds the test has little power: "
                      "\"no\" means not shown, not \"equal\"."]
        return "\n".join(lines) + "\n"
    reference = {"II": "cnn_sru_n3", "III": "cnn_sru_n3", "V": "cnn_sru_n3", "levers": "cnn_sru_n3",
                 "imagenet": "effnet_random_frozen", "speech": "encoder_stats_probe"}[table]
    table_lines, missing = table_markdown(table, rows, runs, all_speakers, reference=reference)
    lines += table_lines
    lines += ["", "WA = accuracy, UA = mean per-class recall, in %; *pooled* over every test utterance of the "
                  "folds run; mean ± std over those folds (ddof=1). Δ vs ref: pooled difference on the folds both "
                  "rows ran; p: paired t-test over those folds' per-fold WA / UA. Epochs: mean epochs run per fold "
                  "(all stages). s / fold: mean wall time of a fold.", ""]
    if table == "speech":
        ref_run = runs.get(reference)
        if ref_run is not None and ref_run.folds:
            ua = pooled(ref_run)[1]
            lines += [f"Goal: UA >= {GOAL_UA} (the paper's CNN+SRU, ImageNet AlexNet) without statistics of the test "
                      f"speaker. The reference reaches UA {pct(ua)} pooled over {len(ref_run.speakers)} "
                      f"fold{'s' if len(ref_run.speakers) > 1 else ''}: "
                      f"{'at or above' if 100 * ua >= GOAL_UA else 'below'} the goal on those folds. "
                      "The probe has no epochs (its C is chosen per fold, below). The first fold of an encoder row "
                      "also extracts the encoder features of the whole corpus (once), which weighs on the mean "
                      "s / fold of those rows.", ""]
        names = {row.name: row.name for row in rows}
        names[os.path.join(baselines_dir, "emodb-is10-train")] = "IS10+SVM"
        lines += ["Paired t-tests (B - A; A = each other system, B = the reference probe on raw audio; then the "
                  "two variants against the reference):", ""]
        lines += table_iv_markdown(runs, speech_pairs(baselines_dir), names)
        recall = recall_markdown(rows, runs, all_speakers)
        if recall:
            lines += ["", "Per-class recall in %, pooled over the test utterances of the folds each system ran "
                          "(UA is their mean):", ""] + recall
        lines += [""]
    protocols = []
    for row in rows:
        run = runs.get(row.name)
        if run is None or not run.folds:
            continue
        if row.features:
            protocols.append(f"- `{row.name}` (feature config `{json.dumps(row.features, sort_keys=True)}`): "
                             + protocol_text(run.config, run.feature_config, probe_grid(run)) + probe_choices(run))
        elif row.kind == "train" and run.config and run.config.get("model") in encoder_models():
            protocols.append(f"- `{row.name}` (feature config: defaults): "
                             + protocol_text(run.config, run.feature_config, probe_grid(run)) + probe_choices(run))
        elif row.kind == "ensemble":
            protocols.append(f"- `{row.name}`: mean of the per-utterance probabilities of "
                             + ", ".join(f"`{m}`" for m in row.members) + " on the folds all of them finished.")
        elif row.kind == "baseline":
            protocols.append(f"- `{run_key(row.name)}`: {baseline_protocol(row, run)}")
        else:
            protocols.append(f"- `{row.name}`: {protocol_text(run.config)}")
    if protocols:
        lines += ["Protocols:", ""] + protocols
    commands = sorted({public_command(run.command) for row in rows for run in [runs.get(row.name)]
                       if run is not None and run.folds and run.command and row.kind in ("train", "baseline")})
    if commands:
        lines += ["", "Last command per run folder:", ""] + [f"- `{command}`" for command in commands]
    if missing:
        lines += ["", "Not run yet: " + ", ".join(f"`{row.name}`" for row in missing)
                  + f" (`{COMMAND} --table={table} --preset={preset}`)."]
    return "\n".join(lines) + "\n"


def invocations_markdown(run_root):
    path = os.path.join(run_root, "invocations.jsonl")
    if not os.path.isfile(path):
        return ""
    lines = ["| started (UTC) | command | folds trained | wall time | machine |", "|---|---|---:|---:|---|"]
    with open(path) as handle:
        for line in handle:
            if not line.strip():
                continue
            item = json.loads(line)
            lines.append(f"| {item['started']} | `{public_command(item['command'])}` | {item['folds_trained']} | "
                         f"{item['wall_time_s'] / 60:.1f} min | {item['machine']} |")
    return "\n".join(lines) + "\n"


BEGIN = "<!-- reproduce:begin {key} -->"
END = "<!-- reproduce:end {key} -->"

TEMPLATE = """# Reproducing Jiang, Fu & Tao (2019) on EMO-DB, leave-one-speaker-out

Every table below is written by `python -m experiments.reproduce` from the run folders (the generated
blocks between `reproduce:begin` / `reproduce:end` markers are replaced on each run; text outside
them is kept). Paper: CNN+SRU WA 82.5 / UA 80.6 at N=3. Goal: UA >= 80.6 without any
statistic of the test speaker.

"""


def _read(path):
    with open(path) as handle:
        return handle.read()


def _table_rows_of(body):
    """`{key: line}` of the data rows of every Markdown table in `body` (key: the first cell, or the first two
    where the table's header starts with `A | B`, as Table IV's pairs)."""
    rows, header = {}, None
    for line in body.splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
        elif not line.startswith("|---"):
            key = tuple(cells[:2]) if header[:2] == ["A", "B"] else (cells[0],)
            rows[(tuple(header[:2]),) + key] = line
    return rows


def _rows_with_results(body):
    return {key for key, line in _table_rows_of(body).items() if "not run" not in line and "< 2" not in line}


def update_results_md(path, blocks, protect=True, log=None):
    """Replaces (or appends) the generated blocks `{key: markdown}` of `path`, keeping everything else.

    With `protect`, a block that exists is kept as it is when the new one would show a row that has results
    in it without them (a checkout without that row's run folders); `log` says so.
    """
    text = _read(path) if os.path.isfile(path) else TEMPLATE
    for key, body in blocks.items():
        begin, end = BEGIN.format(key=key), END.format(key=key)
        block = f"{begin}\n{body.rstrip()}\n{end}"
        if begin in text and end in text:
            start = text.index(begin)
            stop = text.index(end, start) + len(end)
            if protect:
                lost = _rows_with_results(text[start + len(begin):stop - len(end)]) - _rows_with_results(body)
                if lost:
                    if log:
                        log(f"kept the block '{key}' of {path} as it was: its rows "
                            + ", ".join(repr(" | ".join(k[1:])) for k in sorted(lost))
                            + " have results there but no run folder here (--overwrite_blocks rewrites it)")
                    continue
            text = text[:start] + block + text[stop:]
        else:
            text = text.rstrip("\n") + "\n\n" + block + "\n"
    from tf_pipeline.atomic import write_text_atomic  # here: --features sets the Keras backend first

    write_text_atomic(path, text)
    return text


def merge_invocations(old_body, new_body):
    """The invocation table of `new_body` with the rows of `old_body` it lacks, in order of start time."""
    def data_lines(body):
        return [line for line in body.splitlines()
                if line.startswith("|") and not line.startswith(("|---", "| started (UTC) |"))]

    new = data_lines(new_body)
    lines = new + [line for line in data_lines(old_body) if line not in new]
    if len(lines) == len(new):
        return new_body
    lines.sort(key=lambda line: line.strip("|").split("|")[0].strip())
    head = [line for line in new_body.splitlines() if line.startswith("|")][:2]
    prefix = new_body[:new_body.index(head[0])]
    return prefix + "\n".join(head + lines) + "\n"


def existing_block(path, key):
    """The body of the generated block `key` of `path`, or None when there is none."""
    if not os.path.isfile(path):
        return None
    text = _read(path)
    begin, end = BEGIN.format(key=key), END.format(key=key)
    if begin not in text or end not in text:
        return None
    start = text.index(begin) + len(begin)
    return text[start:text.index(end, start)]
