"""YAML aliases are expanded under a cap: a billion-laughs spec fails fast, a spec sharing a layer still loads."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import yaml
from typer.testing import CliRunner

from dlrun.cli import app
from dlrun.errors import SpecError
from dlrun.search.sweep import read_axes_file
from dlrun.spec.loader import MAX_ALIAS_NODES, load_spec, parse_value

from conftest import ROOT, binary_spec, make_binary_csv

runner = CliRunner()


def laughs(levels: int = 9, key: str = "unused") -> str:
    """A billion-laughs document: nine lists of nine aliases of the list before (9**9 strings), under `key`."""
    lines = [f"{key}:", '  a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def spec_text(extra: str = "") -> str:
    return yaml.safe_dump(binary_spec(), sort_keys=False) + extra


def test_a_billion_laughs_spec_fails_fast_with_little_memory_naming_the_alias(tmp_path):
    make_binary_csv(tmp_path / "data.csv")
    spec = tmp_path / "bomb.yaml"
    spec.write_text(spec_text(laughs()))
    probe = textwrap.dedent(
        """
        import json, resource, sys, time, tracemalloc
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))  # the unbounded loader needed 4 GB
        from dlrun.spec.loader import load_spec
        from dlrun.errors import SpecError
        tracemalloc.start()
        start = time.perf_counter()
        try:
            load_spec(sys.argv[1])
            message = None
        except SpecError as exc:
            message = str(exc)
        print(json.dumps({"seconds": time.perf_counter() - start, "peak": tracemalloc.get_traced_memory()[1],
                          "message": message}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(spec)], capture_output=True, text=True, timeout=60, cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout)
    lines = spec.read_text().splitlines()
    alias_line = next(n for n, line in enumerate(lines, 1) if "*a3" in line)  # 9 * 9**3 strings crosses 10,000
    assert found["message"].startswith(f"{spec}:{alias_line}:")
    assert f"more than {MAX_ALIAS_NODES:,} values by alias *a3" in found["message"]
    assert found["seconds"] < 0.5 and found["peak"] < 20 << 20, found


def test_validate_reports_the_bomb_as_one_message(tmp_path):
    make_binary_csv(tmp_path / "data.csv")
    (tmp_path / "bomb.yaml").write_text(spec_text(laughs()))
    result = runner.invoke(app, ["validate", str(tmp_path / "bomb.yaml")])
    assert result.exit_code == 1 and "Traceback" not in result.output and "alias *a3" in result.output


def test_a_spec_that_shares_a_layer_by_alias_loads_and_errors_point_at_the_right_line(tmp_path):
    make_binary_csv(tmp_path / "data.csv")
    text = spec_text().replace(
        "  layers:\n",
        "  layers:\n  - &hidden {type: dense, units: 8, activation: relu}\n  - *hidden\n",
    )
    (tmp_path / "spec.yaml").write_text(text)
    spec = load_spec(tmp_path / "spec.yaml")
    assert [layer.units for layer in spec.model.layers] == [8, 8, 8, 1]
    (tmp_path / "bad.yaml").write_text(text.replace("activation: sigmoid", "activation: sigmoidd"))
    with pytest.raises(SpecError) as caught:
        load_spec(tmp_path / "bad.yaml")
    line = next(n for n, row in enumerate(text.splitlines(), 1) if "sigmoid" in row)
    assert f"bad.yaml:{line}:" in str(caught.value) and "model.layers[3].activation" in str(caught.value)


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ("unused: &loop [1, *loop]\n", r"alias \*loop repeats a node that contains it"),
        ("unused: " + "[" * 150 + "]" * 150 + "\n", "nested more than 100 levels deep"),
    ],
)
def test_a_recursive_alias_and_deep_nesting_are_one_message(tmp_path, extra, words):
    (tmp_path / "spec.yaml").write_text(spec_text(extra))
    with pytest.raises(SpecError, match=words) as caught:
        load_spec(tmp_path / "spec.yaml")
    assert f"spec.yaml:{len(spec_text().splitlines()) + 1}:" in str(caught.value)


def test_overrides_and_sweep_files_read_through_the_same_cap(tmp_path):
    levels = ["&a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    levels += [f"&a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 7)]
    with pytest.raises(yaml.YAMLError, match="more than 10,000 values"):
        parse_value("[" + ", ".join(levels) + "]")
    axes = tmp_path / "axes.yaml"
    axes.write_text(laughs(key="seed"))
    with pytest.raises(SpecError, match=r"axes.yaml: .*more than 10,000 values by alias \*a3 .*\(line 6, column 12\)"):
        read_axes_file(axes)
    make_binary_csv(tmp_path / "data.csv")
    (tmp_path / "spec.yaml").write_text(spec_text())
    bomb = "seed=[" + ", ".join(levels) + "]"
    result = runner.invoke(app, ["validate", str(tmp_path / "spec.yaml"), "--set", bomb])
    assert result.exit_code == 1 and "more than 10,000 values" in result.output
