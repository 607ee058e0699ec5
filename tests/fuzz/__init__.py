"""Coverage-guided fuzzing of the readers of untrusted bytes (issue 19): a developer tool.

``python -m tests.fuzz`` (``make fuzz``) runs each target of :mod:`tests.fuzz.targets` under
atheris for a fixed budget, in its own process, and writes a report; README.md says more.
Production code never imports this package (import-linter). Nothing here imports atheris or
the backbone at package import: the worker imports the targets inside atheris'
instrumentation.
"""
