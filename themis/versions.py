"""Installed packages' versions, as `importlib.metadata.version` answers them, without its import.

`importlib.metadata` (with `email`, `zipfile` and `csv` behind it) costs ~25 ms of CPU to
import: a new run's provenance and the HTTP adapter's User-Agent paid it before every run's
first call. A distribution installed by pip (a wheel, or an editable install) is a
`NAME-VERSION.dist-info` directory on `sys.path`, its version in its name; reading those names
answers at once, and `importlib.metadata` is asked only about a package none names (an egg, a
source tree). A leaf beside the layers: the adapters and the app both read versions.
"""

from __future__ import annotations

import os
import sys

__all__ = ["installed_version", "installed_versions"]


def installed_version(package: str) -> str | None:
    """The installed version of `package`, or `None` when it is not installed."""
    return installed_versions((package,)).get(package)


def installed_versions(packages: tuple[str, ...]) -> dict[str, str]:
    """The installed version of each of `packages` that is installed, as
    `importlib.metadata.version` answers it: read from the names of the `*.dist-info`
    directories on `sys.path` (`NAME-VERSION.dist-info`, the first on the path winning), and
    only for a package none names, from `importlib.metadata` (the module docstring)."""
    wanted = {_normalized(package): package for package in packages}
    found: dict[str, str] = {}
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if not name.endswith(".dist-info"):
                continue
            project, _, version = name.removesuffix(".dist-info").partition("-")
            package = wanted.get(_normalized(project))
            if package is not None and version and package not in found:
                found[package] = version
    missing = [package for package in packages if package not in found]
    if missing:
        from importlib import metadata

        for package in missing:
            try:
                found[package] = metadata.version(package)
            except metadata.PackageNotFoundError:
                continue
    return {package: found[package] for package in packages if package in found}


def _normalized(project: str) -> str:
    """A project's name as distributions' directory names compare (PEP 503, `_` for `-`)."""
    return project.lower().replace("-", "_").replace(".", "_")
