"""Dataset rows that do not come from a text file: Parquet (read through DuckDB), a Hugging Face
dataset saved on disk (the optional `datasets` package; never the hub), and loader plugins.

Every row becomes a JSON object, as case fields must be (dates as ISO text, decimals as
numbers); a value JSON cannot hold (bytes, NaN) is a `ConfigError` naming the row and column.
"""

from __future__ import annotations

import datetime
import decimal
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from themis.core.errors import ConfigError, PluginError
from themis.core.plugins import PluginKind, PluginRegistry
from themis.core.spec import DatasetSpec

__all__ = ["TABLE_FORMATS", "json_row", "plugin_rows", "table_rows"]

TABLE_FORMATS = ("parquet", "huggingface")


def table_rows(kind: str, file: Path, split: str | None) -> list[Mapping[str, Any]]:
    """The rows of a Parquet file or a saved Hugging Face dataset (`split` of a dataset dict)."""
    if not file.exists():
        raise ConfigError(f"path: file not found: {file}")
    if kind == "parquet":
        if split is not None:
            raise ConfigError("split: a Parquet file has no splits")
        return _parquet_rows(file)
    return _huggingface_rows(file, split)


def _parquet_rows(file: Path) -> list[Mapping[str, Any]]:
    import duckdb

    from themis.adapters.duckdb_quiet import quiet_connection

    try:
        with quiet_connection() as connection:
            result = connection.execute("SELECT * FROM read_parquet(?)", [str(file)])
            columns = [column[0] for column in result.description or ()]
            return [dict(zip(columns, row, strict=True)) for row in result.fetchall()]
    except duckdb.Error as error:
        message = " ".join(str(error).split())
        raise ConfigError(f"path: {file}: not a readable Parquet file ({message})") from None


def _huggingface_rows(directory: Path, split: str | None) -> list[Mapping[str, Any]]:
    try:
        import datasets
    except ImportError:
        raise ConfigError(
            "format: 'huggingface' needs the datasets package (pip install 'themis[hf]')"
        ) from None
    try:
        loaded = datasets.load_from_disk(str(directory))
    except (FileNotFoundError, ValueError) as error:
        message = " ".join(str(error).split())
        raise ConfigError(
            f"path: {directory}: not a saved Hugging Face dataset ({message})"
        ) from None
    if isinstance(loaded, datasets.DatasetDict):
        if split is None or split not in loaded:
            names = ", ".join(sorted(loaded))
            raise ConfigError(f"split: {split!r} is not a split of {directory} (splits: {names})")
        loaded = loaded[split]
    elif split is not None:
        raise ConfigError(f"split: {directory} holds one dataset, not splits")
    return [dict(row) for row in loaded]


def plugin_rows(
    dataset: DatasetSpec, where: Path | None, plugins: PluginRegistry | None
) -> Iterable[Mapping[str, Any]]:
    """The rows dataset loader plugin `dataset.loader` returns for `where` and `params`."""
    name = dataset.loader or ""
    found = None if plugins is None else plugins.get(PluginKind.DATASET_LOADER, name)
    if found is None or found.implementation is None:
        raise PluginError(f"loader: dataset loader plugin {name!r} is not loaded")
    try:
        rows = found.implementation(None if where is None else str(where), **dataset.params)
        return [row if isinstance(row, Mapping) else _not_a_row(name, row) for row in rows]
    except ConfigError:
        raise
    except Exception as error:
        raise PluginError(
            f"loader: dataset loader plugin {name!r} raised {type(error).__name__}: {error}"
        ) from None


def _not_a_row(name: str, row: object) -> Mapping[str, Any]:
    raise PluginError(f"loader: plugin {name!r} yielded a {type(row).__name__}, not a mapping")


def json_row(row: Mapping[str, Any], index: int, label: str) -> dict[str, Any]:
    """`row` with every value as JSON holds it; `ConfigError` for one it cannot hold."""
    return {
        str(key): _json(value, f"{label} row {index} column {key!r}") for key, value in row.items()
    }


def _json(value: Any, where: str) -> Any:
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"path: {where}: {value!r} is not a JSON number")
        return value
    if isinstance(value, decimal.Decimal):
        return _json(float(value), where)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(key): _json(item, where) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json(item, where) for item in value]
    raise ConfigError(f"path: {where}: a {type(value).__name__} value is not JSON")
