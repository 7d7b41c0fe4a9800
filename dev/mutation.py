"""Planted one-line mutations of the core, and which of them the tests catch.

Each mutant changes one token of one line: a comparison (``<`` to ``<=``, ``==`` to ``!=``), an
arithmetic operator (``+``/``-``, ``*``/``/``), a boolean (``and``/``or``, ``True``/``False``,
``not`` dropped) or a number (doubled; 0 becomes 1). A mutant is killed when the package's tests
fail (or time out) with it in place. Mutants are drawn at random (``--seed``) per package, run in
a copy of the repository (the working tree is never touched), ``--jobs`` at a time.

Run: ``python dev/mutation.py [--package checks ...] [--sample 40] [--jobs 2] [--list]``.
Prints one line per surviving mutant (``path:line  before -> after``) and the score per package;
``--json FILE`` writes every mutant and its fate. A surviving mutant is either a gap in the tests
or an equivalent mutant (one that changes no behaviour): read each before counting it.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import tokenize
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# package -> (source files, the tests that cover them)
PACKAGES: dict[str, tuple[list[str], list[str]]] = {
    "losses": (
        ["utnet_diag/losses"],
        ["tests/losses", "tests/diagnostics/test_loss_breakdown.py"],
    ),
    "checks": (
        ["utnet_diag/checks"],
        [
            "tests/checks",
            "tests/diagnostics/test_check_batch.py",
            "tests/checks/test_image_content.py",
            "tests/conventions",
            "tests/diagnostics/test_loss_breakdown.py",
            "tests/diagnostics/test_loss_checks_nan.py",
            "tests/diagnostics/test_weight_balance_rules.py",
            "tests/diagnostics/test_grad_flow.py",
            "tests/test_measures.py",
        ],
    ),
    "geometry": (
        ["utnet_diag/geometry"],
        [
            "tests/geometry",
            "tests/conventions",
            "tests/diagnostics/test_check_batch.py",
            "tests/test_joints.py",
        ],
    ),
    "grad": (
        ["utnet_diag/diagnostics/grad", "utnet_diag/diagnostics/grad_flow.py"],
        [
            "tests/diagnostics/grad",
            "tests/diagnostics/test_grad_flow.py",
            "tests/diagnostics/test_grad_flow_frontiers.py",
            "tests/diagnostics/test_advisor.py",
            "tests/diagnostics/test_step.py",
            "tests/diagnostics/test_plots.py",  # grad_flow.grad_figure
        ],
    ),
    "logs": (
        ["utnet_diag/logs/checks.py", "utnet_diag/logs/parse.py", "utnet_diag/logs/tables.py"],
        ["tests/logs"],
    ),
    "datasets": (
        ["utnet_diag/datasets/ho3d.py", "utnet_diag/datasets/dexycb.py"],
        ["tests/datasets"],
    ),
    "mano": (["utnet_diag/mano"], ["tests/mano", "tests/losses"]),
    "evaluation": (
        ["utnet_diag/evaluation"],
        ["tests/evaluation", "tests/cli/test_eval.py"],
    ),
    "training": (
        [
            "utnet_diag/diagnostics/step.py",
            "utnet_diag/diagnostics/amp.py",
            "utnet_diag/optimizer_config.py",
            "utnet_diag/checks/step.py",
            "utnet_diag/checks/amp.py",
        ],
        [
            "tests/diagnostics/test_step.py",
            "tests/diagnostics/test_amp.py",
            "tests/test_optimizer_config.py",
            "tests/checks/test_step.py",
            "tests/checks/test_amp.py",
        ],
    ),
    "pictures": (["utnet_diag/pictures"], ["tests/pictures"]),
}

SWAP = {
    "<": "<=", "<=": "<", ">": ">=", ">=": ">", "==": "!=", "!=": "==",
    "+": "-", "-": "+", "*": "/", "/": "*", "//": "*", "%": "*",
    "and": "or", "or": "and", "True": "False", "False": "True", "is": "is not",
}  # fmt: skip
# lines whose tokens are never mutated: imports, and declarations the tests cannot observe
SKIP_PREFIXES = ("import ", "from ", "__all__", "@", "def ", "class ", "raise ", "assert ")


@dataclass
class Mutant:
    path: str
    line: int
    col: int
    before: str
    after: str
    fate: str = ""  # killed / survived / timeout
    seconds: float = 0.0

    def label(self) -> str:
        return f"{self.path}:{self.line}  {self.before!r} -> {self.after!r}"


def _is_unary(prev: tokenize.TokenInfo | None) -> bool:
    return prev is None or prev.type == tokenize.OP and prev.string in "([{,=:" or (
        prev.type == tokenize.NAME and prev.string in ("return", "in", "and", "or", "not", "if",
                                                       "else", "lambda", "yield")
    )  # fmt: skip


def _number(text: str) -> str | None:
    try:
        value = int(text, 0)
    except ValueError:
        try:
            value = float(text)
        except ValueError:
            return None
    if isinstance(value, bool):
        return None
    return "1" if value == 0 else repr(value * 2)


def mutants_of(path: Path) -> list[Mutant]:
    """Every one-token mutant of the file at ``path`` (relative to ROOT in the result)."""
    source = path.read_text()
    lines = source.splitlines()
    rel = str(path.relative_to(ROOT))
    found: list[Mutant] = []
    prev: tokenize.TokenInfo | None = None
    depth_in_def = 0  # inside a ``def`` signature: annotations and ``*`` markers are left alone
    in_annotation = False
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    for i, tok in enumerate(tokens):
        following = tokens[i + 1].string if i + 1 < len(tokens) else ""
        line = lines[tok.start[0] - 1].lstrip() if tok.start[0] <= len(lines) else ""
        if tok.type in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT,
                        tokenize.DEDENT, tokenize.STRING):  # fmt: skip
            prev = tok if tok.type == tokenize.STRING else prev
            if tok.type == tokenize.NEWLINE:
                depth_in_def, in_annotation = 0, False
            continue
        if tok.type == tokenize.NAME and tok.string == "def":
            depth_in_def = -1
        if depth_in_def:
            if tok.string == "(":
                depth_in_def = depth_in_def + 1 if depth_in_def > 0 else 1
            elif tok.string == ")":
                depth_in_def -= 1
            prev = tok
            continue
        if tok.string == ":" and prev is not None and prev.type == tokenize.NAME:
            in_annotation = line.split(":")[0].strip().isidentifier()  # ``x: int = 1``
        if tok.string == "=":
            in_annotation = False
        if line.startswith(SKIP_PREFIXES) or in_annotation or tok.string == "|":
            prev = tok
            continue
        after = None
        if tok.type == tokenize.NUMBER:
            after = _number(tok.string)
        elif tok.type == tokenize.NAME and tok.string == "not":
            after = ""
        elif tok.string in SWAP and (tok.type == tokenize.NAME or tok.type == tokenize.OP):
            if tok.string in ("*", "-", "+") and _is_unary(prev):
                after = None if tok.string == "*" else ""  # a sign dropped; ``*args`` kept
            else:
                after = SWAP[tok.string]
            if tok.string == "is" and following == "not":
                after = None  # ``is not`` -> ``is`` comes from dropping the ``not``
        if after is not None:
            found.append(Mutant(rel, tok.start[0], tok.start[1], tok.string, after))
        prev = tok
    return found


def _apply(root: Path, m: Mutant) -> str:
    target = root / m.path
    original = target.read_text()
    lines = original.splitlines(keepends=True)
    text = lines[m.line - 1]
    assert text[m.col : m.col + len(m.before)] == m.before, m.label()
    replacement = m.after
    if m.before == "not":  # ``not x`` -> ``x``
        end = m.col + len(m.before)
        lines[m.line - 1] = text[: m.col] + text[end:].lstrip(" ")
    else:
        lines[m.line - 1] = text[: m.col] + replacement + text[m.col + len(m.before) :]
    target.write_text("".join(lines))
    return original


def _run(root: Path, tests: list[str], timeout: float) -> str:
    env = {**os.environ, "PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    try:
        done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout"
    return "survived" if done.returncode == 0 else "killed"


def _copy(dest: Path) -> Path:
    shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns(
        ".git", ".venv", "venv", "__pycache__", "*.egg-info", ".ruff_cache", ".pytest_cache"))  # fmt: skip
    return dest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", action="append", choices=sorted(PACKAGES))
    parser.add_argument("--sample", type=int, default=40, help="mutants per package (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per mutant")
    parser.add_argument("--list", action="store_true", help="count the mutants and stop")
    parser.add_argument("--json", type=Path, help="write every mutant and its fate here")
    args = parser.parse_args()
    chosen = args.package or sorted(PACKAGES)
    plan: dict[str, list[Mutant]] = {}
    for name in chosen:
        sources, _ = PACKAGES[name]
        files = [f for s in sources for f in ([ROOT / s] if (ROOT / s).is_file()
                 else sorted((ROOT / s).rglob("*.py")))]  # fmt: skip
        everything = [m for f in files for m in mutants_of(f)]
        rng = random.Random(f"{args.seed}:{name}")
        picked = everything if args.sample <= 0 or args.sample >= len(everything) else (
            rng.sample(everything, args.sample))  # fmt: skip
        plan[name] = sorted(picked, key=lambda m: (m.path, m.line, m.col))
        print(f"{name}: {len(everything)} mutants in {len(files)} files, {len(plan[name])} drawn",
              file=sys.stderr)  # fmt: skip
    if args.list:
        return 0
    work = Path(tempfile.mkdtemp(prefix="mutation-"))
    copies = [_copy(work / f"copy{i}") for i in range(args.jobs)]
    free = list(copies)
    jobs = [(name, m) for name, ms in plan.items() for m in ms]

    def one(item: tuple[str, Mutant]) -> None:
        name, m = item
        root = free.pop()
        try:
            tests = [t for t in PACKAGES[name][1] if (root / t).exists()]
            original = _apply(root, m)
            start = time.perf_counter()
            try:
                m.fate = _run(root, tests, args.timeout)
            finally:
                (root / m.path).write_text(original)
            m.seconds = round(time.perf_counter() - start, 1)
            if m.fate == "survived":
                print(f"survived  {m.label()}", flush=True)
        finally:
            free.append(root)

    try:
        with ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(one, jobs))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    for name, ms in plan.items():
        killed = sum(m.fate in ("killed", "timeout") for m in ms)
        print(f"{name:10s} {killed:3d}/{len(ms):3d} killed  ({killed / max(len(ms), 1):.0%})")
    if args.json:
        args.json.write_text(json.dumps({k: [asdict(m) for m in v] for k, v in plan.items()},
                                        indent=1))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
