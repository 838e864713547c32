"""The atheris harness (fuzz/parser_fuzz.py) checks what it should, and runs.

Its target runs here on the corpus and on random bytes without atheris; with atheris
installed (the `fuzz` extra) a short fuzzing session must end without a finding.
"""

from __future__ import annotations

import importlib.util
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
HARNESS = REPO / "fuzz" / "parser_fuzz.py"
CORPUS = REPO / "tests" / "corpus"


def load_harness() -> Any:
    spec = importlib.util.spec_from_file_location("parser_fuzz", HARNESS)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_target_accepts_the_corpus_and_random_bytes() -> None:
    harness = load_harness()
    rng = random.Random(1)
    inputs = [path.read_bytes() for path in sorted(CORPUS.glob("*.json"))]
    inputs += [rng.randbytes(rng.randrange(64)) for _ in range(500)]
    inputs += [body[: rng.randrange(len(body))] for body in inputs[:40]]
    for data in inputs:
        for extra in (b"", b" ", b"  "):  # the length picks provider and bytes or text
            harness.test_one_input(data + extra)


@pytest.mark.timeout(300)
def test_a_short_fuzzing_session_finds_nothing(tmp_path: Path) -> None:
    pytest.importorskip("atheris", reason="atheris is in the fuzz extra (pip install -e '.[fuzz]')")
    done = subprocess.run(
        [
            sys.executable,
            str(HARNESS),
            "-atheris_runs=3000",
            f"-artifact_prefix={tmp_path}/",
            str(tmp_path),
            str(CORPUS),
        ],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Done 3000" in done.stderr
    assert not list(tmp_path.glob("crash-*"))
