"""The experiment runners: the paper's tables, the baselines, the GPU and cross-corpus experiments.

They sit outside the installed packages and run from the repository root:
`python -m experiments.reproduce --table=III`, `python experiments/baselines.py ...`
(each script's docstring gives its command).
"""
