"""The synthetic country (``backbone.directory.synthetic``) as an exchange's directory, with
a run's broker accounts: the live reform test and the benchmark's reform step use it."""

from __future__ import annotations

from backbone.directory import Directory, DirectoryFile, generate_directory

__all__ = ["GOVERNMENT_OFFICE", "country_directory"]

GOVERNMENT_OFFICE = "000.00.00.G22"  # the sender of the reform runs: direct, never reformed


def country_directory(prefix: str, provinces: int, ministries: bool) -> Directory:
    """The first ``provinces`` and the Government Office, with the ministries, their units and
    their hubs when ``ministries`` (else the Government Office alone), every broker account
    under ``prefix``; a version-2 file."""
    country = generate_directory(seed=5, provinces=provinces)
    hubs = tuple(
        hub.model_copy(update={"broker_account": f"{prefix}{hub.broker_account}"})
        for hub in country.hubs
        if ministries or str(hub.id).startswith("00.")
    )
    agencies = tuple(
        a.model_copy(update={"broker_account": f"{prefix}{a.broker_account}"})
        if a.broker_account
        else a
        for a in country.agencies
        if ministries or a.organ_code.levels[0][0] == "H" or str(a.organ_code) == GOVERNMENT_OFFICE
    )
    file = DirectoryFile(version=2, agency_count=len(agencies), hubs=hubs, agencies=agencies)
    return Directory(file)
