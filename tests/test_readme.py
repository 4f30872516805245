"""The README's two first commands and CI agree."""

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def readme_commands():
    text = open(os.path.join(ROOT, "README.md")).read()
    block = re.search(r"```\n(.*?)```", text, re.S).group(1)
    return [line for line in block.splitlines() if line.strip()]


def test_readme_opens_with_main_job_and_test_command():
    main_job, tests = readme_commands()[:2]
    assert "keras-ser demo" in main_job
    assert "pytest" in tests and 'pip install -q -e ".[dev]"' in tests


def test_ci_runs_the_readme_test_command_verbatim():
    ci = open(os.path.join(ROOT, ".ci", "run")).read().splitlines()
    assert readme_commands()[1] in ci
