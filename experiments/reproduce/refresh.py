"""One refresh of docs/results.md and docs/results.json from the run folders of a run root.

The tables' blocks and the invocation log go into the Markdown (a block is
kept when the new one would turn a row with results into "not run", unless
`protect=False`); the entries of the run folders found replace theirs in the
leaderboard, whose ranking block is rewritten in the Markdown as well.
"""

import os

from . import leaderboard
from .grids import DEFAULT_BASELINES
from .grids import ROOT
from .markdown import block_markdown
from .markdown import existing_block
from .markdown import invocations_markdown
from .markdown import merge_invocations
from .markdown import update_results_md
from .runs import load_runs


def write_results(path, tables, preset, run_root, all_speakers, baselines_dir=DEFAULT_BASELINES, json_path=None,
                  log=None, protect=True):
    """Refreshes the blocks of `tables` (and the invocation log) of one run root in `path`, and the
    leaderboard `json_path` (default: `path` with `.json`) from every run folder of the run root.

    Without a leaderboard file the refresh starts a new one (`log` says so): its entries are those of the run
    folders found here, nothing is read back from the Markdown. Returns the Markdown as written.
    """
    json_path = json_path or os.path.splitext(path)[0] + ".json"
    if not os.path.isfile(json_path) and log:
        log(f"{json_path} does not exist: a new leaderboard with the run folders found here only")
    previous = leaderboard.load(json_path)
    runs = load_runs(run_root, baselines_dir, preset)
    tag = os.path.basename(os.path.normpath(run_root))
    blocks = {f"table={table} runs={tag}": block_markdown(table, preset, run_root, runs, all_speakers, baselines_dir)
              for table in tables}
    log_md = invocations_markdown(run_root)
    if log_md:
        key = f"invocations runs={tag}"
        body = f"### Commands that ran (run folders `{os.path.relpath(run_root, ROOT)}/`)\n\n" + log_md
        old = existing_block(path, key)
        blocks[key] = merge_invocations(old, body) if old else body
    update_results_md(path, blocks, protect=protect, log=log)
    entries = leaderboard.merge(previous, leaderboard.system_entries(preset, run_root, runs, all_speakers,
                                                                     baselines_dir))
    leaderboard.write(json_path, entries, markdown=path)
    with open(path) as handle:
        return handle.read()
