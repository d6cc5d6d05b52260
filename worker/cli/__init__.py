"""The ``vrec`` command: parse arguments, call the service, render the answer.

Nothing here opens a session or builds SQL; heavy modules (Celery, the runtime) are
imported inside the commands that need them, so ``vrec --help`` stays fast. Commands live
in :mod:`.running` (run, wait, reprocess), :mod:`.batches` (batches, status, retry,
cancel, export, prune, providers, resume), :mod:`.services` (worker, beat, simulator,
db, demo) and :mod:`.observe` (health, metrics, report); :mod:`.common` holds what they
share.
"""

from __future__ import annotations

from worker.cli import batches, observe, running, services
from worker.cli.common import App

app = App(help="vrec: vehicle-image recognition in batches.", no_args_is_help=True)
running.register(app)
batches.register(app)
services.register(app)
observe.register(app)
