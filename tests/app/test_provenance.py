"""Provenance: the config's path, content hash and repository commit; the installed versions."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

import themis
from themis.app.usecases.provenance import (
    RECORDED_PACKAGES,
    config_provenance,
    environment_provenance,
)
from themis.versions import installed_version, installed_versions

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


def test_installed_versions_are_importlib_metadata_s() -> None:
    packages = (*RECORDED_PACKAGES, "typer", "httpx", "pytest", "no-such-package-here")
    expected = {}
    for package in packages:
        try:
            expected[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    assert installed_versions(packages) == expected
    assert "no-such-package-here" not in expected
    recorded = environment_provenance()
    assert {package: recorded[package] for package in RECORDED_PACKAGES} == {
        package: metadata.version(package) for package in RECORDED_PACKAGES
    }


def test_the_first_distribution_on_the_path_names_the_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    for entry, version in ((first, "1.2.3"), (second, "9.9.9")):
        info = entry / f"Some_Thing-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: some-thing\nVersion: {version}\n"
        )
    monkeypatch.setattr(sys, "path", [str(first), str(second), *sys.path])
    assert installed_versions(("some-thing",)) == {"some-thing": "1.2.3"}
    assert installed_version("Some.Thing") == "1.2.3"
    assert metadata.version("some-thing") == "1.2.3"  # (as the reference answers)
