"""Reading facts back from saved packages, and writing files so nothing is half-written."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

_ARRAY_DTYPES = {65568: "float32", 65600: "float64", 65552: "float16", 131104: "int32", 131080: "int8"}


def spec_io(spec: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Inputs and outputs (name, shape, dtype) as declared in a model spec."""

    def one(feature: Any) -> dict[str, Any]:
        arr = feature.type.multiArrayType
        return {
            "name": feature.name,
            "shape": [int(d) for d in arr.shape],
            "dtype": _ARRAY_DTYPES.get(arr.dataType, f"type{arr.dataType}"),
        }

    return [one(f) for f in spec.description.input], [one(f) for f in spec.description.output]


def package_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def temp_sibling(path: Path, tag: str = "partial") -> Path:
    return path.with_name(f".{path.name}.{tag}-{uuid.uuid4().hex[:8]}")


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def write_json_atomic(path: Path, data: Any) -> None:
    """JSON through a temporary sibling and ``os.replace``: readers never see half a file."""
    tmp = temp_sibling(path, "tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    finally:
        remove(tmp)


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def merge_json_atomic(path: Path, update: dict[str, Any]) -> dict[str, Any]:
    """Read-merge-write: top-level keys in ``update`` replace those in the file, others stay."""
    data = read_json(path)
    data.update(update)
    write_json_atomic(path, data)
    return data


def move_into_place(src: Path, dst: Path) -> None:
    """Replace ``dst`` (file or package folder) with ``src``; the old one is gone only after."""
    if dst.exists():
        old = temp_sibling(dst, "old")
        os.replace(dst, old)
        try:
            os.replace(src, dst)
        except OSError:
            os.replace(old, dst)
            raise
        remove(old)
    else:
        os.replace(src, dst)
