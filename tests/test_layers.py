"""What an adapter process loads: nothing of the router, its store, tracking or SQL.

import-linter (``make lint``) checks the imports as written; these check what a real
adapter process has in ``sys.modules`` once imported, and once started on the broker."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from testkit.documents import document_edxml
from tests.support import Deployment, adapter_deployment_fixture  # noqa: F401

FORBIDDEN = (
    "backbone.devtools",
    "backbone.replica",
    "backbone.router",
    "backbone.store",
    "backbone.tracking",
    "sqlalchemy",
)

G22, H41 = "000.00.00.G22", "000.00.00.H41"

# Starts the adapter of the YAML file given, sends one document, closes, prints sys.modules.
STARTED = """
import asyncio, json, sys
from pathlib import Path
from adapters import AdapterClient, AdapterConfig

async def main() -> None:
    client = AdapterClient(AdapterConfig.load(Path(sys.argv[1])))
    await client.start()
    await client.send(Path(sys.argv[2]).read_bytes())
    await client.close()

asyncio.run(main())
print(json.dumps(sorted(sys.modules)))
"""


def _loaded(*args: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", *args], capture_output=True, text=True, check=True, timeout=120
    )
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


def test_an_adapter_process_loads_nothing_of_the_router_tracking_or_sql() -> None:
    probe = (
        "import json, sys\n"
        "import adapters, adapters.cli, adapters.dropfolder\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    loaded = _loaded(probe)
    assert "adapters.client" in loaded  # the probe really loaded the adapter
    wrong = [name for name in loaded if name.startswith(FORBIDDEN)]
    assert wrong == []


@pytest.mark.broker
async def test_a_started_adapter_that_sent_a_document_loaded_nothing_of_the_router(
    adapter_deployment: Deployment, tmp_path: Path
) -> None:
    config = adapter_deployment.config(G22)
    values = config.model_dump(mode="json", exclude_none=True)
    values["amqp_url"] = config.amqp_url.get_secret_value()
    config_file = tmp_path / "adapter.yaml"
    config_file.write_text(yaml.safe_dump(values), encoding="utf-8")
    document = tmp_path / "document.edxml"
    document.write_bytes(document_edxml(G22, [H41], 1))

    # In a thread: the deployment's router shares this event loop.
    loaded = await asyncio.to_thread(_loaded, STARTED, str(config_file), str(document))

    assert "aio_pika" in loaded  # it really connected and published
    wrong = [name for name in loaded if name.startswith(FORBIDDEN)]
    assert wrong == []
