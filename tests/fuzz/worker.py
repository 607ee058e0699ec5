"""One target under atheris, in a process of its own (atheris.Setup/Fuzz take it over):

    python -m tests.fuzz.worker NAME LAST_INPUT [libFuzzer arguments and corpus dirs ...]

The backbone is imported inside ``atheris.instrument_imports`` so libFuzzer sees its
coverage. libFuzzer writes its status lines and any finding to stderr. Each input is also
written to LAST_INPUT before it runs: when a C library corrupts the heap, libFuzzer's own
crash handler can hang or die before it saves the input, and that file still holds it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import atheris  # type: ignore[import-untyped]


def main(argv: list[str]) -> None:
    name, last_input, libfuzzer_args = argv[1], argv[2], argv[3:]
    with atheris.instrument_imports(include=["backbone", "adapters"]):
        from tests.fuzz.targets import TARGETS
    from tests.fuzz import feedback

    feedback.instrument(atheris.instrument_func)
    descriptor = os.open(last_input, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    atheris.Setup([argv[0], *libfuzzer_args], _remembering(TARGETS[name].run, descriptor))
    atheris.Fuzz()


def _remembering(run: Callable[[bytes], None], descriptor: int) -> Callable[[bytes], None]:
    def one_input(data: bytes) -> None:
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, data, 0)
        run(data)

    return one_input


if __name__ == "__main__":
    main(sys.argv)
