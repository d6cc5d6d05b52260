"""The operations people and producers ask for, one module per concern.

- :mod:`.database`: the configured database, opened with its schema checked;
- :mod:`.submit`: register a batch (sources -> images and jobs);
- :mod:`.follow`: dispatch and watch a batch to the end (an embedded worker when no
  broker is configured);
- :mod:`.status`: where a batch or the whole queue stands; closing a circuit;
- :mod:`.work`: what the Celery tasks do (run jobs by id, dispatch, reconcile).

Entry points (the CLI, Celery tasks) only parse, call one of these and render; rendering
lives in :mod:`worker.render`. This package imports nothing itself, so that reading a
result type (e.g. :class:`.status.Summary`) loads neither Celery nor the runtime.
"""
