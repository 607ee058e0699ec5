"""The adapter's sealing thread (the drop folder's and the gateway's).

Sealing (lxml, XML-DSig) runs on ONE thread of its own: off the event loop, but never two
at once, since lxml parses its XSDs per thread and parallel first parses fail; this thread
parses them once, at start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from backbone.edxml import examine

__all__ = ["SealingThread"]

_T = TypeVar("_T")
# A tiny edXML whose examination loads the XSDs on the sealing thread at start.
_WARM_UP = b'<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016"/>'


class SealingThread:
    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="adapter-seal")

    def warm_up(self) -> None:
        """Load the XSDs on the thread now, not at the first file."""
        self._executor.submit(examine, _WARM_UP).result()

    async def run(self, function: Callable[[bytes], _T], data: bytes) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, data)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False)
