"""The layers hold where it matters at run time: the pipeline and the adapters load
neither the database layer nor Celery (import-linter checks the static imports in
`make lint`; this checks what a fresh interpreter really loads)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

LIGHT = ("worker.pipeline", "worker.policy", "worker.providers.registry", "worker.imaging")
ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("sqlalchemy", "celery", "kombu", "alembic", "models")


def test_pipeline_and_adapters_load_neither_sqlalchemy_nor_celery() -> None:
    code = (
        "import importlib, json, sys\n"
        f"for name in {LIGHT!r}: importlib.import_module(name)\n"
        "import worker.providers.registry as r\n"
        "r.settings_models()  # every adapter module, too\n"
        "import worker.ratelimit\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(out.stdout) == []


def test_rendering_loads_no_celery_and_no_runtime() -> None:
    code = (
        "import json, sys\n"
        "import worker.render, worker.htmlreport\n"
        "print(json.dumps(sorted(m for m in sys.modules"
        " if m.split('.')[0] in ('celery', 'kombu') or m in ('worker.runtime', 'worker.app'))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(out.stdout) == []


def architecture_section() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return readme.split("\n## Architecture\n", 1)[1].split("\n## ", 1)[0]


def listed_modules() -> list[str]:
    """Every module and package a newcomer should find in the tree: worker's, its service
    and cli packages', models' and tasks' (a package's own inside is its own folder's)."""
    found = []
    for folder in ("worker", "worker/service", "worker/cli", "models", "tasks"):
        for path in sorted((ROOT / folder).iterdir()):
            if path.name == "__init__.py" or (path.name.startswith(("_", ".")) and path.is_dir()):
                continue
            if path.suffix == ".py" or (path / "__init__.py").exists():
                found.append(f"{folder}/{path.name}")
    return found


def test_the_readme_tree_names_every_module() -> None:
    section = architecture_section()
    missing = [
        module
        for module in listed_modules()
        if not re.search(rf"^ +{re.escape(module.rsplit('/', 1)[1])}/? ", section, re.M)
    ]
    assert missing == []
    assert len(listed_modules()) > 60
