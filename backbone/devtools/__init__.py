"""Developer tools: for command lines, tests and CI, never imported by production code.

- :mod:`backbone.devtools.ca` and :mod:`backbone.devtools.ca_cli`: the development CA
  (``backbone pki init/issue/revoke/crl``), standing in for the Government Cipher Committee;
- :mod:`backbone.devtools.discovery` and :mod:`backbone.devtools.discovery_cli`: finding,
  starting or installing a local broker (``backbone broker ensure``);
- :mod:`backbone.devtools.demo`: ``backbone demo``;
- :mod:`backbone.devtools.sandbox`: ``backbone sandbox``, gateways for an integration team.

import-linter (``[tool.importlinter]`` in ``pyproject.toml``) keeps production code from
importing this package; only command lines may.
"""

__all__: list[str] = []
