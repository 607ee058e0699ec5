"""The agency directory: who exists, how each agency is connected, and which tier it is in.

Load a file with :func:`load_directory`, build one in code with :class:`DirectoryBuilder`,
generate a country-size one with :func:`generate_directory`. See docs/directory.md.
"""

from backbone.directory.builder import DirectoryBuilder, agency_account, hub_account
from backbone.directory.index import DEFAULT_ZONE, ConnectedSystem, Directory
from backbone.directory.loader import (
    Format,
    dump_directory,
    format_of,
    load_directory,
    parse_directory,
)
from backbone.directory.model import (
    DIRECTORY_VERSION,
    Agency,
    Connection,
    DirectoryFile,
    Hub,
    OrganCodeField,
    Share,
    Status,
    Successor,
    SystemIdField,
    TierModelField,
)
from backbone.directory.synthetic import generate_directory
from backbone.directory.timeline import CodeRole, Heir, Resolution, State

__all__ = [
    "DEFAULT_ZONE",
    "DIRECTORY_VERSION",
    "Agency",
    "CodeRole",
    "ConnectedSystem",
    "Connection",
    "Directory",
    "DirectoryBuilder",
    "DirectoryFile",
    "Format",
    "Heir",
    "Hub",
    "OrganCodeField",
    "Resolution",
    "Share",
    "State",
    "Status",
    "Successor",
    "SystemIdField",
    "TierModelField",
    "agency_account",
    "dump_directory",
    "format_of",
    "generate_directory",
    "hub_account",
    "load_directory",
    "parse_directory",
]
