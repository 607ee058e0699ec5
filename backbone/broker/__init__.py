"""The broker side: connection settings and TLS, the management API, provisioning.

Nothing is re-exported here: import the module that does the job."""

__all__: list[str] = []
