"""The release stamp written into every file this package produces: saved checkpoints and exported models.

Readers (AutoBackend, checkpoint loaders, upstream tools) look these keys up by name, so their
spelling is fixed: date (ISO time of writing), version (package version), license, docs.
"""

from __future__ import annotations

from datetime import datetime

LICENSE = "AGPL-3.0 License (https://ultralytics.com/license)"
DOCS_URL = "https://docs.ultralytics.com"


def release_stamp() -> dict[str, str]:
    """{date, version, license, docs} for a file written now, in that order."""
    from ultralytics import __version__  # the package root imports engine modules lazily; avoid a cycle

    return {"date": datetime.now().isoformat(), "version": __version__, "license": LICENSE, "docs": DOCS_URL}
