"""Replica Of: sources, sync jobs, statuses; `replication.syncer` is the Django-free data plane."""
