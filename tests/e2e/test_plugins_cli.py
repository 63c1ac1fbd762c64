"""A plugin package installed with pip (`--no-deps --target`), used from a config by the real
CLI: its metric, parser and provider run, a new version of it is a new run, and a missing one is
a one-line error with exit 2 at compile time."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_process import run_themis, themis_env, themis_json
from tests.plugins.wheel import install_plugin

pytestmark = pytest.mark.slow

CONFIG = """
name = "plugin-demo"
seed = 1
samples = 1

[[datasets]]
name = "qa"
cases = [
  { id = "1", fields = { q = "Capital of France?" }, expected = "Paris is the capital" },
  { id = "2", fields = { q = "2 + 2?" }, expected = "four" },
]

[[models]]
name = "echo"
provider = "demo.echo"
model = "echo-1"

[[prompts]]
name = "ask"
template = "{{ q }}"

[parser]
name = "demo.last_line"

[[metrics]]
name = "demo.overlap"

[[metrics]]
name = "themis_demo_plugin.metrics:word_overlap"
params = { lowercase = false }
"""


@pytest.fixture(scope="module")
def installs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("plugin-installs")
    return {version: install_plugin(root / version, version) for version in ("1.0", "1.1")}


def test_an_installed_plugin_package_runs_from_a_config(
    tmp_path: Path, installs: dict[str, Path]
) -> None:
    (tmp_path / "exp.toml").write_text(CONFIG)
    env = themis_env(PYTHONPATH=str(installs["1.0"]))
    result = themis_json(tmp_path, "run", "exp.toml", "--store", "s.duckdb", "--json", env=env)
    rows = {row["metric"]: row["mean"] for row in result["results"]}
    assert rows == {"demo.overlap": 1.0, "themis_demo_plugin.metrics:word_overlap": 1.0}
    # The stored run reads back with the version it ran with; another version is another run.
    report = themis_json(
        tmp_path, "report", result["run_id"], "--store", "s.duckdb", "--format", "json", env=env
    )
    assert report["results"] == result["results"]
    other = run_themis(
        tmp_path,
        "resume",
        result["run_id"],
        "--store",
        "s.duckdb",
        env=themis_env(PYTHONPATH=str(installs["1.1"])),
    )
    assert other.returncode == 2
    assert other.stderr.strip().splitlines() == [
        f"error: run {result['run_id'][:12]}: metric plugin 'demo.overlap' 1.0 is not installed "
        "at that version; install it to resume or replay this run"
    ]
    # Without the plugin, the stored run still reports: it recorded its plugins' identities.
    bare = themis_env(without=["PYTHONPATH"])
    alone = themis_json(
        tmp_path, "report", result["run_id"], "--store", "s.duckdb", "--format", "json", env=bare
    )
    assert alone["results"] == result["results"]


def test_a_new_plugin_version_is_a_new_run_id(tmp_path: Path, installs: dict[str, Path]) -> None:
    (tmp_path / "exp.toml").write_text(CONFIG)
    ids = {
        version: themis_json(
            tmp_path, "plan", "exp.toml", "--json", env=themis_env(PYTHONPATH=str(target))
        )["run_id"]
        for version, target in installs.items()
    }
    assert ids["1.0"] != ids["1.1"]


def test_a_missing_plugin_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "exp.toml").write_text(CONFIG)
    completed = run_themis(tmp_path, "plan", "exp.toml", env=themis_env(without=["PYTHONPATH"]))
    assert completed.returncode == 2
    assert completed.stderr.strip().splitlines() == [
        "error: exp.toml: parser.name: no parser plugin is named 'demo.last_line' (there is no "
        "parser plugin); install the package that declares it (entry point group "
        "'themis.plugins') or write 'module:attr'"
    ]
    assert not (tmp_path / "themis.duckdb").exists()


JUDGED = """
name = "plugin-judge"
seed = 1
samples = 1

[[datasets]]
name = "qa"
cases = [
  { id = "1", fields = { q = "Is it?" }, expected = "yes" },
  { id = "2", fields = { q = "Is it not?" }, expected = "no" },
]

[[models]]
name = "echo"
provider = "demo.echo"
model = "echo-1"

[[prompts]]
name = "ask"
template = "{{ q }}"

[parser]
name = "demo.last_line"

[[judges]]
name = "agrees"
template = "{{ candidate }}"
[[judges.models]]
name = "judge"
provider = "demo.echo"
model = "echo-judge"
[judges.verdict]
kind = "demo.thought"

[[metrics]]
name = "execution"
files = { "sol.py" = "answer = {answer}" }
rules = [{ stage = 1, validator = "demo.compiles" }]
"""


def test_installed_judge_and_validator_plugins_are_named_checked_and_versioned(
    tmp_path: Path, installs: dict[str, Path]
) -> None:
    (tmp_path / "judged.toml").write_text(JUDGED)
    plans = {
        version: themis_json(
            tmp_path, "plan", "judged.toml", "--json", env=themis_env(PYTHONPATH=str(target))
        )
        for version, target in installs.items()
    }
    assert plans["1.0"]["run_id"] != plans["1.1"]["run_id"]
    env = themis_env(PYTHONPATH=str(installs["1.0"]))
    result = themis_json(tmp_path, "run", "judged.toml", "--store", "j.duckdb", "--json", env=env)
    means = {row["metric"]: row["mean"] for row in result["results"]}
    # The echo judge always shows its reasoning; each answer (`yes`, `no`: Python names)
    # compiles as `answer = yes`.
    assert (means["agrees"], means["execution"], means["execution:stage1"]) == (1.0, 1.0, 1.0)
    missing = run_themis(tmp_path, "plan", "judged.toml", env=themis_env(without=["PYTHONPATH"]))
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines()[0].startswith("error: judged.toml: ")
    assert len(missing.stderr.strip().splitlines()) == 1
