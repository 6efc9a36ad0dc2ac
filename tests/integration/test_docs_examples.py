"""The code blocks of README.md and docs/ run, so the docs cannot drift from the code.

A fenced block may follow one marker comment on the line before it (blank lines between allowed):

- ``<!-- no-run -->``: never run (used for things such as a Ray cluster).
- ``<!-- long -->``: a Python block that runs only in ``make test-long`` (marked slow), at full size.
- ``<!-- requires: CMD [--flag ...] -->``: skipped until ``pgrl``'s parser has that sub-command (and flags).

Python blocks run in one subprocess, each in a fresh namespace and a fresh working directory, with
``Algorithm.learn`` capped at ``STEP_CAP`` env steps and ``evaluate_policy`` at ``EPISODE_CAP``
episodes: the examples keep their real budgets on the page and run in seconds here.  Shell blocks
(```bash / ```console) are not executed; each ``pgrl ...`` line in them is parsed by
``pgrl.cli.build_parser``, so a renamed command or flag fails the suite.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STEP_CAP, EPISODE_CAP = 1024, 3
MARKER = re.compile(r"^<!--\s*(no-run|long|requires:[^>]*?)\s*-->$")
FENCE = re.compile(r"^(`{3,})\s*([\w-]*)")


@dataclass(frozen=True)
class Block:
    path: str  # relative to the repository root
    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    marker: str | None

    @property
    def id(self) -> str:
        return f"{self.path}:{self.line}"


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def read_blocks(path: Path) -> list[Block]:
    """Every fenced block of one Markdown file, with the marker comment just before it (if any)."""
    lines = path.read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        match = FENCE.match(lines[i].strip())
        if not match:
            i += 1
            continue
        fence, lang, start = match.group(1), match.group(2).lower(), i
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip().startswith(fence)), None)
        assert end is not None, f"{path}:{i + 1}: a code block is not closed"
        previous = next((lines[j].strip() for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        marker = MARKER.match(previous)
        blocks.append(Block(str(path.relative_to(ROOT)), start + 1, lang, "\n".join(lines[start + 1:end]) + "\n",
                            marker.group(1) if marker else None))
        i = end + 1
    return blocks


ALL_BLOCKS = [block for path in doc_files() for block in read_blocks(path)]
PYTHON = [b for b in ALL_BLOCKS if b.lang in ("python", "py") and b.marker != "no-run"]
SHORT = [b for b in PYTHON if b.marker != "long"]
LONG = [b for b in PYTHON if b.marker == "long"]
SHELL = [b for b in ALL_BLOCKS if b.lang in ("bash", "sh", "console", "shell") and b.marker != "no-run"]


def cli_parser() -> argparse.ArgumentParser:
    from pgrl.cli import build_parser

    return build_parser()


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def missing_requirement(marker: str | None) -> str | None:
    """What a ``requires:`` marker names that pgrl's parser lacks (None when all is there)."""
    if not marker or not marker.startswith("requires:"):
        return None
    command, *flags = marker.removeprefix("requires:").split()
    sub = subcommands(cli_parser()).get(command)
    if sub is None:
        return f"pgrl has no '{command}' command yet"
    absent = [flag for flag in flags if flag not in sub._option_string_actions]
    return f"pgrl {command} has no {', '.join(absent)} yet" if absent else None


def test_the_docs_have_examples_and_markers_are_known():
    """The collection itself: there are runnable examples, and every marker is one of the three kinds."""
    assert len(SHORT) >= 10 and any(b.path == "README.md" for b in SHORT)
    for path in doc_files():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip().startswith("<!--") and ("requires" in line or "run" in line or "long" in line):
                assert MARKER.match(line.strip()), f"{path}:{number}: unknown code-block marker {line.strip()!r}"
    for block in ALL_BLOCKS:
        if block.marker and block.marker.startswith("requires:"):
            assert block.marker.split()[1:], f"{block.id}: 'requires:' names no command"


RUNNER = r'''
import json, os, sys, tempfile, time, traceback
import torch
torch.set_num_threads(1)
import pgrl
from pgrl import evaluation
from pgrl.algos.base import Algorithm

STEP_CAP, EPISODE_CAP = int(sys.argv[2]), int(sys.argv[3])
learn = Algorithm.learn
def capped_learn(self, total_timesteps=None, *args, **kwargs):
    return learn(self, min(int(total_timesteps or STEP_CAP), STEP_CAP), *args, **kwargs)
Algorithm.learn = capped_learn
evaluate = evaluation.evaluate_policy
def capped_evaluate(model, env, n_eval_episodes=10, *args, **kwargs):
    return evaluate(model, env, min(n_eval_episodes, EPISODE_CAP), *args, **kwargs)
evaluation.evaluate_policy = pgrl.evaluate_policy = capped_evaluate

results = {}
for block in json.load(open(sys.argv[1])):
    with tempfile.TemporaryDirectory() as cwd:
        os.chdir(cwd)
        start = time.perf_counter()
        try:
            exec(compile(block["code"], block["id"], "exec"), {"__name__": "__main__"})
            results[block["id"]] = None
        except BaseException:
            results[block["id"]] = traceback.format_exc()
        print(f"{block['id']}: {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
print("RESULTS " + json.dumps(results))
'''


@pytest.fixture(scope="module")
def short_results(tmp_path_factory) -> dict[str, str | None]:
    """Run every short Python block once, in one subprocess; id -> None or the traceback."""
    runnable = [b for b in SHORT if missing_requirement(b.marker) is None]
    folder = tmp_path_factory.mktemp("doc-examples")
    (folder / "blocks.json").write_text(json.dumps([{"id": b.id, "code": b.code} for b in runnable]))
    (folder / "runner.py").write_text(RUNNER)
    done = subprocess.run([sys.executable, str(folder / "runner.py"), str(folder / "blocks.json"), str(STEP_CAP),
                           str(EPISODE_CAP)], capture_output=True, text=True, timeout=600, cwd=folder)
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULTS ")), None)
    assert line is not None, f"the example runner died:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return json.loads(line.removeprefix("RESULTS "))


@pytest.mark.parametrize("block", SHORT, ids=lambda b: b.id)
def test_python_example_runs(block, short_results):
    if (reason := missing_requirement(block.marker)) is not None:
        pytest.skip(reason)
    assert short_results[block.id] is None, f"{block.id} failed:\n{short_results[block.id]}"


@pytest.mark.slow
@pytest.mark.parametrize("block", LONG, ids=lambda b: b.id)
def test_long_python_example_runs(block, tmp_path):
    if (reason := missing_requirement(block.marker)) is not None:
        pytest.skip(reason)
    script = tmp_path / "example.py"
    script.write_text(block.code)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # one torch thread, as the CLI's default
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=900, cwd=tmp_path,
                          env=env)
    assert done.returncode == 0, f"{block.id} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"


def pgrl_commands(block: Block) -> list[list[str]]:
    """The ``pgrl ...`` command lines of a shell block, as argv lists without the program name."""
    commands = []
    for line in block.code.splitlines():
        line = line.strip().removeprefix("$ ")
        if line.startswith("pgrl "):
            commands.append(shlex.split(line, comments=True)[1:])
    return commands


SHELL_WITH_PGRL = [b for b in SHELL if pgrl_commands(b)]


@pytest.mark.parametrize("block", SHELL_WITH_PGRL, ids=lambda b: b.id)
def test_shell_example_commands_parse(block):
    if (reason := missing_requirement(block.marker)) is not None:
        pytest.skip(reason)
    parser = cli_parser()
    for argv in pgrl_commands(block):
        try:
            parser.parse_args(argv)
        except SystemExit as exc:
            pytest.fail(f"{block.id}: `pgrl {shlex.join(argv)}` does not parse (exit {exc.code})")


def test_requires_markers_skip_what_is_missing():
    """A marker naming a command pgrl lacks skips its block; one naming what exists does not."""
    assert missing_requirement("requires: no-such-command") == "pgrl has no 'no-such-command' command yet"
    assert missing_requirement("requires: train --no-such-flag") == "pgrl train has no --no-such-flag yet"
    assert missing_requirement("requires: train --seed --total-timesteps") is None
    assert missing_requirement(None) is None
