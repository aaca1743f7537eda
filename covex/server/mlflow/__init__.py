"""MLflow's REST API, served by Covex: MLflow clients, training scripts and ``models:/`` loads work unchanged.

Thin adapters over the same service as API v1, so tokens, roles, policies, the audit trail and file
digests apply to every call that comes in this way:

- ``registry``: MLflow's model-registry API (``/api/2.0/mlflow/registered-models/*``, ``model-versions/*``);
- ``tracking``: the part of MLflow's tracking API that logging and registering a model needs;
- ``artifacts``: MLflow's artifact proxy (``/api/2.0/mlflow-artifacts/artifacts/...``);
- ``messages``: reading MLflow's requests, ``errors``: MLflow's error codes and statuses.
"""
