"""The real ``backbone`` command with one poison document: the router's processing of the
envelope carrying it fails every time, as a bug would (the same injection as the in-process
test in tests/test_router.py, here in a router process)::

    python -m tests.faults.poisoned_router DOCUMENT_ID router run --config router.yaml

Everything else is the unchanged router: the inbound queue's delivery limit must
dead-letter the poison envelope and the router must go on with the rest.
"""

from __future__ import annotations

import sys

from backbone.cli import main
from backbone.envelope import read_frame
from backbone.router.pipeline import Decision, Pipeline


def poison(document_id: str) -> None:
    evaluate = Pipeline.evaluate

    async def failing(
        self: Pipeline, body: bytes, *, user_id: str | None, redelivered: bool = False
    ) -> Decision:
        if read_frame(body).header.document_id == document_id:
            raise RuntimeError(f"simulated router bug on document {document_id}")
        return await evaluate(self, body, user_id=user_id, redelivered=redelivered)

    Pipeline.evaluate = failing  # type: ignore[method-assign]


if __name__ == "__main__":
    poison(sys.argv.pop(1))
    main()
