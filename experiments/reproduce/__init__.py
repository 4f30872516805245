"""The paper's tables on EMO-DB under leave-one-speaker-out, docs/results.md and the leaderboard docs/results.json.

Run it from the repository root: `python -m experiments.reproduce --table=III`
(`--help` lists the tables, presets and options). The modules, each importable
on its own (none imports Keras or TensorFlow when it is imported):

- `grids`: the grids as data: the paper's figures, the presets, the levers,
  the rows of every table and the `TrainConfig` of each row.
- `runs`: loading run folders (`RunScores`) and their statistics: pooled and
  per-fold WA / UA, paired t-tests, per-class recall.
- `protocols`: how a run is described: protocol sentence, machine, command.
- `markdown`: the generated blocks of docs/results.md and their update.
- `leaderboard`: docs/results.json: entries, merging, writing, and the ranking
  (entries that use the test speaker's audio or a setting chosen on the test
  folds are listed, not ranked).
- `refresh`: one refresh of both files from a run root.
- `cli`: the command line: train what is missing, then refresh.
"""
