"""A tiny real plugin package, built as a wheel and installed with pip into a directory.

`themis_demo_plugin` declares, as entry points of group `themis.plugins`, a metric
(`demo.overlap`), a parser (`demo.last_line`), a model provider (`demo.echo`), a judge
(`demo.thought`) and a validator (`demo.compiles`), so the tests
use plugins the way a user installs them: `pip install --no-deps --target DIR wheel`.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

NAME = "themis_demo_plugin"

SOURCES = {
    "__init__.py": '"""A demo Themis plugin package (tests only)."""\n',
    "metrics.py": '''"""A metric plugin: the share of the expected answer's words in the answer."""


def word_overlap(answer: str, expected: str, *, lowercase: bool = True) -> float:
    def words(text: str) -> set[str]:
        return set((text.lower() if lowercase else text).split())

    want = words(expected)
    return len(want & words(answer)) / len(want) if want else 0.0
''',
    "parsers.py": '''"""A parser plugin: the response's last non-empty line, or no answer."""


def last_line(text: str) -> str | None:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else None
''',
    "judges.py": '''"""A judge plugin: 1 when the judge shows its reasoning, else 0."""


def thought(text: str, *, marker: str = "let me think") -> float | None:
    if not text.strip():
        return None
    return 1.0 if marker in text.lower() else 0.0
''',
    "validators.py": '''"""A validator plugin: the candidate's file compiles as Python."""

from pathlib import Path


def compiles(workspace: str, answer: str, *, file: str = "sol.py") -> bool:
    try:
        compile(Path(workspace, file).read_text(), file, "exec")
    except SyntaxError:
        return False
    return True
''',
    "models.py": '''"""A provider plugin: the request's reference on a line of its own."""

from themis import ModelRequest


class Echo:
    async def generate(self, request: ModelRequest) -> str:
        return f"Let me think.\\n{request.reference}"
''',
}

ENTRY_POINTS = """[themis.plugins]
demo.overlap = themis_demo_plugin.metrics:word_overlap
demo.last_line = themis_demo_plugin.parsers:last_line
demo.echo = themis_demo_plugin.models:Echo
demo.thought = themis_demo_plugin.judges:thought
demo.compiles = themis_demo_plugin.validators:compiles
"""


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def build_wheel(directory: Path, version: str) -> Path:
    """The plugin package at `version` as a wheel file in `directory`."""
    dist_info = f"themis_demo_plugin-{version}.dist-info"
    files = {f"{NAME}/{name}": text.encode() for name, text in SOURCES.items()}
    files[f"{dist_info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: themis-demo-plugin\nVersion: {version}\n"
    ).encode()
    files[f"{dist_info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: themis-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    files[f"{dist_info}/entry_points.txt"] = ENTRY_POINTS.encode()
    record = [_record_line(path, data) for path, data in files.items()]
    files[f"{dist_info}/RECORD"] = ("\n".join([*record, f"{dist_info}/RECORD,,"]) + "\n").encode()
    wheel = directory / f"themis_demo_plugin-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return wheel


def install_plugin(target: Path, version: str) -> Path:
    """Install the plugin package at `version` into `target` with pip (no index, no deps)."""
    wheels = target.parent / f"wheels-{version}"
    wheels.mkdir(parents=True, exist_ok=True)
    wheel = build_wheel(wheels, version)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-index",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    return target
