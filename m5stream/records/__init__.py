"""Run records, live metrics and the HTML report (``Loader(record=..., metrics_port=...)``).

Every run of a :class:`m5stream.Loader` (and of ``m5stream bench``) can leave a row in a SQL
database that anyone can query (:mod:`.schema`, :mod:`.store`), written off the training loop
by one thread per loader (:mod:`.recorder`); a Prometheus endpoint that a dashboard scrapes
(:mod:`.metrics`); and a static HTML page of runs (:mod:`.report`). The ``m5stream runs`` and
``m5stream report`` commands are in :mod:`.commands`.

Importing this package is cheap: SQLAlchemy and prometheus-client are imported only by a
recorder that uses them.
"""

from __future__ import annotations

from .recorder import Recorder, open_recorder, recorder_of
from .urls import default_url, redact, resolve_url

__all__ = ["Recorder", "default_url", "open_recorder", "recorder_of", "redact", "resolve_url"]
