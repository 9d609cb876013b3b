"""Write the JSON Schema files of the wire contracts: `python -m schemas.generate`.

`schemas/json/<name>.schema.json` is made from each model with
`model_json_schema(by_alias=True)`, then given `$schema`, `$id` and a title, and printed
with sorted keys, two-space indents and a trailing newline, so the output depends on the
models only. With `--check` nothing is written: it lists the files that differ from what
it would write and exits 1 if there are any (tests/schemas/test_schemas.py does the same).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pydantic import BaseModel

from schemas.catalog import CatalogFile
from schemas.event import UsageEvent
from schemas.manifest import Manifest
from schemas.statement import Statement

JSON_DIR = Path(__file__).resolve().parent / "json"
DRAFT = "https://json-schema.org/draft/2020-12/schema"
ID_BASE = "https://gpuledger.invalid/schemas/"

# file stem -> (model, title)
MODELS: dict[str, tuple[type[BaseModel], str]] = {
    "usage-event": (UsageEvent, "gpuledger usage event (CloudEvents 1.0, structured JSON)"),
    "catalog": (CatalogFile, "gpuledger catalog file (TOML, as parsed)"),
    "statement": (Statement, "gpuledger settlement statement"),
    "manifest": (Manifest, "gpuledger auditor bundle manifest"),
}


def file_name(stem: str) -> str:
    return f"{stem}.schema.json"


def render(stem: str) -> str:
    """The exact text of one schema file."""
    model, title = MODELS[stem]
    schema = model.model_json_schema(by_alias=True)
    schema["$schema"] = DRAFT
    schema["$id"] = ID_BASE + file_name(stem)
    schema["title"] = title
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def rendered() -> dict[str, str]:
    """File name -> text, for every schema file."""
    return {file_name(stem): render(stem) for stem in MODELS}


def drifted(directory: Path = JSON_DIR) -> list[str]:
    """Names of the files in `directory` that are missing or differ from `rendered()`."""
    names = []
    for name, text in rendered().items():
        path = directory / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            names.append(name)
    return names


def write(directory: Path = JSON_DIR) -> list[str]:
    """Write the files that differ; returns their names."""
    directory.mkdir(parents=True, exist_ok=True)
    names = drifted(directory)
    texts = rendered()
    for name in names:
        (directory / name).write_text(texts[name], encoding="utf-8", newline="\n")
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m schemas.generate", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 listing the files that are out of date"
    )
    parser.add_argument("--out", type=Path, default=JSON_DIR, help=f"folder of the files (default {JSON_DIR})")
    args = parser.parse_args(argv)
    if args.check:
        names = drifted(args.out)
        for name in names:
            print(f"out of date: {args.out / name}", file=sys.stderr)
        if names:
            print("run: python -m schemas.generate", file=sys.stderr)
            return 1
        return 0
    for name in write(args.out):
        print(f"wrote {args.out / name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
