"""The Python API: docs/api.md's examples run as written; imports are quiet and light."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_api_guide_runs_as_written(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "api.md").read_text(), re.S)
    assert len(blocks) >= 4
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    namespace = {}
    for block in blocks:
        exec(compile(block, "docs/api.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert "nats_per_token" in out and "expected a positive integer, received 0" in out
    answer = namespace["answer"]
    assert answer.answer == answer.ranking[0][0] == "xyz" and answer.calibrated
    assert len(namespace["texts"]) == 2 and all(isinstance(t, str) and t
                                                for t in namespace["texts"])
    assert namespace["report"]["kind"] == "attribution" and "baseline" in namespace["report"]
    assert len(namespace["run"].history) == 2


def test_importing_toolkit_prints_nothing_and_loads_no_tensorflow(tmp_path):
    code = ("import sys, toolkit\n"
            "print('tensorflow' in sys.modules, callable(toolkit.train),"
            " callable(toolkit.open_run))")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert result.stdout.split() == ["False", "True", "True"] and result.stderr == ""


def test_a_model_call_from_python_prints_no_tensorflow_start_up_lines(tmp_path):
    code = ("import toolkit\n"
            "run = toolkit.train({'corpus': {'use': 'inline', 'text': 'abc ' * 100},"
            " 'sequences': {'batch_size': 2, 'length': 8}, 'core': {'units': 4},"
            " 'train': {'epochs': 1, 'sample_length': 0}}, run_dir='r')\n"
            "print(len(run.generate(prime='a', length=5)[0]))")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300)
    assert result.stdout.strip().splitlines()[-1] == "5", result.stderr[-800:]
    assert "absl" not in result.stderr and "cuda" not in result.stderr.lower()
