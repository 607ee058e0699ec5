"""The router: its extensions (`abc`), pipeline, policy, topology, service, settings.

Nothing is re-exported here: import the module that does the job."""

__all__: list[str] = []
