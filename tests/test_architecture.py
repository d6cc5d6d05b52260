"""The layers hold where it matters at run time: the pipeline and the adapters load
neither the database layer nor Celery (import-linter checks the static imports in
`make lint`; this checks what a fresh interpreter really loads)."""

from __future__ import annotations

import json
import subprocess
import sys

LIGHT = ("worker.pipeline", "worker.policy", "worker.providers.registry", "worker.imaging")
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
