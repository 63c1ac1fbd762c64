"""Config provenance: path, content hash, and the git commit of the config's repository."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import themis
from themis.app.usecases.provenance import config_provenance

DEMO = Path(__file__).resolve().parents[2] / "examples"


def git(directory: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(directory), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def copy_demo(target: Path) -> Path:
    shutil.copytree(DEMO, target)
    return target / "demo.toml"


def test_outside_a_repository_only_the_path_and_hash_are_recorded(tmp_path: Path) -> None:
    config = copy_demo(tmp_path / "plain")
    record = config_provenance(config)
    assert record == {
        "config": str(config),
        "config_sha256": hashlib.sha256(config.read_bytes()).hexdigest(),
    }


def test_in_a_repository_the_commit_and_dirtiness_are_recorded(tmp_path: Path) -> None:
    config = copy_demo(tmp_path / "repo")
    repo = config.parent
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "x")
    clean = config_provenance(config)
    assert clean["git_commit"] == git(repo, "rev-parse", "HEAD")
    assert clean["git_dirty"] == "false"
    config.write_text(config.read_text() + "\n# edited\n")
    assert config_provenance(config)["git_dirty"] == "true"


def test_a_run_from_a_file_stores_its_config_provenance(tmp_path: Path) -> None:
    config = copy_demo(tmp_path / "run")
    store = tmp_path / "s.duckdb"
    result = themis.Experiment.from_file(config).run(store)
    provenance = themis.get_run_snapshot(result.run_id, store).provenance
    assert provenance["config"] == str(config.resolve())
    assert provenance["config_sha256"] == hashlib.sha256(config.read_bytes()).hexdigest()
    assert "git_commit" not in provenance
