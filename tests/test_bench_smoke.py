"""The benchmark harness works end to end (`python -m bench --smoke`): a few hundred messages
through the fakes, the load tool and the targets. No timing is asserted: figures belong to
the benchmark; this checks that it runs, answers every message once and writes its JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_smoke_run_answers_every_message_once_and_writes_json(tmp_path: Path) -> None:
    output = tmp_path / "results.json"
    command = [
        sys.executable,
        "-m",
        "bench",
        "--smoke",
        "--targets",
        "bare-granian,sync-design-granian,gateway-granian",
        "--scenarios",
        "S1,S2,S3",
        "--json",
        str(output),
    ]
    environment = {key: value for key, value in os.environ.items() if key != "TEST_DATABASE_URL"}
    run = subprocess.run(
        command, cwd=REPO, env=environment, capture_output=True, text=True, timeout=580
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(output.read_text())
    results = {(entry["scenario"], entry["target"]): entry for entry in report["results"]}
    assert set(results) == {
        ("S1", "bare (granian)"),
        ("S1", "sync design (granian)"),
        ("S1", "gateway (granian)"),
        ("S2", "sync design (granian)"),
        ("S2", "gateway (granian)"),
        ("S3", "sync design (granian)"),
        ("S3", "gateway (granian)"),
    }
    for (scenario, _target), entry in results.items():
        if scenario == "S1":
            assert entry["acks_per_s"] > 0
            assert entry["non_200"] == 0
        else:
            expected = report["settings"]["messages" if scenario == "S2" else "slow_messages"]
            assert entry["answered"] == expected
            assert (entry["lost"], entry["duplicated"], entry["out_of_order"]) == (0, 0, 0)
    assert "| S2 | gateway (granian) |" in run.stdout
