"""What an adapter process loads: nothing of the router, its store, tracking or SQL.

import-linter (``make lint``) checks the imports as written; this checks what a real
adapter process has in ``sys.modules`` once its command line and client are imported."""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = (
    "backbone.devtools",
    "backbone.replica",
    "backbone.router",
    "backbone.store",
    "backbone.tracking",
    "sqlalchemy",
)


def test_an_adapter_process_loads_nothing_of_the_router_tracking_or_sql() -> None:
    probe = (
        "import json, sys\n"
        "import adapters, adapters.cli, adapters.dropfolder\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = json.loads(done.stdout)
    assert "adapters.client" in loaded  # the probe really loaded the adapter
    wrong = [name for name in loaded if name.startswith(FORBIDDEN)]
    assert wrong == []
