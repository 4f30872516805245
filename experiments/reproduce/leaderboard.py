"""The leaderboard, docs/results.json: one entry per system, merged by run folder, and its ranking.

Each entry is a JSON object with at least `REQUIRED_KEYS`: the system, its
table, run folder (`run`, the key), corpus, test folds, pooled and per-fold WA
/ UA in %, whether it uses the test speaker's unlabelled audio, the command,
the machine and the protocol. The file is the source: a refresh replaces the
entries of the run folders it finds and keeps every other entry as it is; a
missing file is an empty leaderboard (nothing is read back from the
Markdown).

Two kinds of entries are listed but never ranked as results: those with
`"uses_test_speaker_audio": true`, and those with `"chosen_on_test_folds":
true` (and a `chosen_on_test_folds_reason`), whose setting was picked by
looking at the test folds, so that their figure is optimistic. `ranking`
splits the EMO-DB leave-one-speaker-out entries into the ranked ones and the
others (with the reason), and `ranking_markdown` is that split as the
`leaderboard` block of docs/results.md.

>>> ranked, others = ranking([
...     {"system": "a", "run": "a", "corpus": "emodb", "folds": list(EMODB_SPEAKERS), "ua_pooled": 80.0},
...     {"system": "b", "run": "b", "corpus": "emodb", "folds": list(EMODB_SPEAKERS), "ua_pooled": 90.0,
...      "chosen_on_test_folds": True, "chosen_on_test_folds_reason": "k picked on the test folds"}])
>>> [entry["system"] for entry in ranked], [(entry["system"], why) for entry, why in others]
(['a'], [('b', 'chosen on the test folds: k picked on the test folds')])
"""

import json
import os

from .grids import DEFAULT_BASELINES
from .grids import EMODB_SPEAKERS
from .grids import TABLES
from .grids import table_rows
from .markdown import update_results_md
from .protocols import baseline_command
from .protocols import baseline_protocol
from .protocols import machine_label
from .protocols import probe_choices
from .protocols import protocol_text
from .protocols import public_command
from .protocols import run_key
from .protocols import table_command
from .runs import fold_stats
from .runs import per_class_recall
from .runs import pooled
from .runs import probe_grid

REQUIRED_KEYS = ("system", "table", "run", "corpus", "folds", "ua_pooled", "wa_pooled", "per_fold",
                 "uses_test_speaker_audio", "command", "machine", "protocol")
BLOCK = "leaderboard"  # the key of the ranking's block in docs/results.md
EMODB_CLASSES = 7


def _round(value):
    return None if value is None else round(100 * value, 2)


def _system_name(row, preset):
    label = row.label.replace(" (ref)", "")
    return label if row.kind == "baseline" or row.standalone else f"{label} (preset {preset})"


def system_entries(preset, run_root, runs, all_speakers=None, baselines_dir=DEFAULT_BASELINES):
    """Leaderboard entries of every row of every table whose run folder has finished folds (one per run folder;
    `tables` lists every table that shows it)."""
    entries = {}
    for table in TABLES:
        if table == "IV":
            continue
        for row in table_rows(table, preset, baselines_dir):
            run = runs.get(row.name)
            if run is None or not run.folds:
                continue
            path = row.name if row.kind == "baseline" else os.path.join(run_root, row.name)
            key = run_key(path)
            if key in entries:
                entries[key]["tables"].append(table)
                continue
            wa, ua, n = pooled(run)
            wa_mean, wa_std = fold_stats(run, "wa")
            ua_mean, ua_std = fold_stats(run, "ua")
            times = [f["wall_time_s"] for f in run.folds.values() if f.get("wall_time_s")]
            if row.kind == "baseline":
                command, protocol = run.command or baseline_command(row.name), baseline_protocol(row, run)
            elif row.kind == "ensemble":
                command = table_command(table, preset, run.speakers, all_speakers)
                protocol = ("mean of the per-utterance probabilities of "
                            + ", ".join(row.members) + " on the folds all of them finished")
            else:
                command = run.command or table_command(table, preset, run.speakers, all_speakers)
                protocol = protocol_text(run.config, run.feature_config, probe_grid(run)) + probe_choices(run)
                if row.features:
                    protocol = f"feature config {json.dumps(row.features, sort_keys=True)}; " + protocol
            recall = per_class_recall(run)
            entries[key] = {
                "system": _system_name(row, preset),
                "table": table,
                "tables": [table],
                "run": key,
                "corpus": run.corpus or "emodb",
                "preset": None if row.kind == "baseline" or row.standalone else preset,
                "folds": run.speakers,
                "n_utterances": n,
                "wa_pooled": _round(wa),
                "ua_pooled": _round(ua),
                "wa_mean": _round(wa_mean), "wa_std": _round(wa_std),
                "ua_mean": _round(ua_mean), "ua_std": _round(ua_std),
                "per_fold": [{"speaker": s, "wa": _round(run.folds[s]["wa"]), "ua": _round(run.folds[s]["ua"])}
                             for s in run.speakers],
                "per_class_recall": {name: _round(value) for name, (value, _) in recall.items()},
                "s_per_fold": round(sum(times) / len(times), 1) if times else None,
                "paper": {"wa": row.paper[0], "ua": row.paper[1]} if row.paper else None,
                "uses_test_speaker_audio": bool(row.uses_test_audio or run.uses_test_audio),
                "command": public_command(command),
                "machine": machine_label(run.versions),
                "protocol": protocol,
                "source": "run folder",
            }
    return list(entries.values())


def load(path):
    """The entries of the leaderboard `path`; `[]` when there is no such file (a new leaderboard)."""
    if not os.path.isfile(path):
        return []
    with open(path) as handle:
        entries = json.load(handle)
    if not isinstance(entries, list) or not all(isinstance(entry, dict) and "run" in entry for entry in entries):
        raise ValueError(f"{path} must hold a JSON list of leaderboard entries (objects with a 'run' key). "
                         f"Received: a {type(entries).__name__}"
                         + ("" if not isinstance(entries, list) else " with an entry that is not such an object"))
    return entries


def merge(old, new):
    """`old` with every entry whose `run` is in `new` replaced by the new one, then the new runs."""
    fresh = {entry["run"]: entry for entry in new}
    merged = [fresh.pop(entry["run"], entry) for entry in old]
    return merged + [entry for entry in new if entry["run"] in fresh]


def write(path, entries, markdown=None):
    """Writes the leaderboard `entries` to `path` (indented JSON, keys sorted, atomically) and refreshes the
    ranking block of the Markdown file `markdown` (default: the `.md` beside `path`, when there is one)."""
    from tf_pipeline.atomic import write_json_atomic  # here: --features sets the Keras backend first

    write_json_atomic(path, entries)
    markdown = markdown or os.path.splitext(path)[0] + ".md"
    if os.path.isfile(markdown):
        update_results_md(markdown, {BLOCK: ranking_markdown(entries)}, protect=False)


def not_ranked_because(entry, speakers=EMODB_SPEAKERS):
    """Why an EMO-DB leave-one-speaker-out entry is not ranked as a result, or None when it is."""
    if entry.get("uses_test_speaker_audio"):
        return "uses the test speaker's unlabelled audio"
    if entry.get("chosen_on_test_folds"):
        return "chosen on the test folds: " + (entry.get("chosen_on_test_folds_reason") or "reason not recorded")
    if sorted(entry["folds"]) != sorted(speakers):
        return f"{len(entry['folds'])} of the {len(speakers)} folds"
    if entry.get("classes") and len(entry["classes"]) != EMODB_CLASSES:
        return f"{len(entry['classes'])} of the {EMODB_CLASSES} classes"
    return None


def ranking(entries, corpus="emodb", speakers=EMODB_SPEAKERS):
    """`(ranked, others)` of the leave-one-speaker-out entries of `corpus` (test folds among `speakers`).

    `ranked`: the entries on every fold that use nothing of the test speaker and no setting chosen on the
    test folds, best pooled UA first (then WA; ties keep the file's order). `others`: `(entry, reason)` for
    the rest, in the file's order. Entries of other corpora or protocols (leave-one-corpus-out) are in neither.
    """
    scope = [entry for entry in entries if entry.get("corpus") == corpus and entry.get("folds")
             and set(entry["folds"]) <= set(speakers) and entry.get("ua_pooled") is not None]
    reasons = [(entry, not_ranked_because(entry, speakers)) for entry in scope]
    ranked = sorted((entry for entry, why in reasons if why is None),
                    key=lambda entry: (-entry["ua_pooled"], -(entry.get("wa_pooled") or 0.0)))
    return ranked, [(entry, why) for entry, why in reasons if why is not None]


def _cell(value):
    return "" if value is None else f"{value:.1f}"


def _folds(entry, speakers=EMODB_SPEAKERS):
    folds = sorted(entry["folds"])
    return f"all {len(folds)}" if folds == sorted(speakers) else f"{len(folds)}: " + ",".join(folds)


def ranking_markdown(entries):
    """The `leaderboard` block of docs/results.md: the ranked EMO-DB LOSO entries, then the others with why."""
    ranked, others = ranking(entries)
    lines = ["### EMO-DB, leave-one-speaker-out: the entries of `results.json`, ranked by pooled UA", "",
             f"Ranked: every entry on all {len(EMODB_SPEAKERS)} folds and {EMODB_CLASSES} classes that uses no audio "
             "of the test speaker and no setting chosen on the test folds.", "",
             "| rank | system | UA pooled | WA pooled | UA mean ± std | table | run |",
             "|---:|---|---:|---:|---:|---|---|"]
    for rank, entry in enumerate(ranked, 1):
        spread = (f"{_cell(entry['ua_mean'])} ± {_cell(entry.get('ua_std'))}"
                  if entry.get("ua_mean") is not None else "")
        lines.append(f"| {rank} | {entry['system'].replace('|', '/')} | **{_cell(entry['ua_pooled'])}** | "
                     f"{_cell(entry.get('wa_pooled'))} | {spread} | {entry.get('table', '')} | `{entry['run']}` |")
    if others:
        lines += ["", "Not ranked (each row says why):", "",
                  "| system | UA pooled | WA pooled | folds | why not ranked | run |", "|---|---:|---:|---|---|---|"]
        for entry, reason in others:
            if entry.get("uses_test_speaker_audio"):
                reason = "**[uses test-speaker audio]**"
            elif entry.get("chosen_on_test_folds"):
                reason = "**[chosen on the test folds]** " + (entry.get("chosen_on_test_folds_reason") or "")
            lines.append(f"| {entry['system'].replace('|', '/')} | {_cell(entry['ua_pooled'])} | "
                         f"{_cell(entry.get('wa_pooled'))} | {_folds(entry)} | {reason.rstrip().replace('|', '/')} | "
                         f"`{entry['run']}` |")
    return "\n".join(lines) + "\n"
