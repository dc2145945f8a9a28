from __future__ import annotations

from django.urls import path

from config import apis as bdb_apis
from console import apis
from replication import apis as replica_apis

urlpatterns = [
    path("bdbs", bdb_apis.BdbListApi.as_view(), name="api-bdb-list"),
    path("bdbs/<int:uid>", bdb_apis.BdbDetailApi.as_view(), name="api-bdb-detail"),
    path(
        "bdbs/replica_sources/alerts",
        replica_apis.alerts_api("all").as_view(),
        name="api-replica-alerts",
    ),
    path(
        "bdbs/replica_sources/alerts/<int:uid>",
        replica_apis.alerts_api("bdb").as_view(),
        name="api-replica-alerts-bdb",
    ),
    path(
        "bdbs/replica_sources/alerts/<int:uid>/<int:source_uid>",
        replica_apis.alerts_api("source").as_view(),
        name="api-replica-alerts-source",
    ),
    path(
        "bdbs/replica_sources/alerts/<int:uid>/<int:source_uid>/<str:alert>",
        replica_apis.alerts_api("alert").as_view(),
        name="api-replica-alerts-one",
    ),
    path(
        "bdbs/<int:uid>/replica_alert_settings",
        replica_apis.ReplicaAlertSettingsApi.as_view(),
        name="api-bdb-replica-alert-settings",
    ),
    path(
        "bdbs/<int:uid>/actions/replica_source_url",
        replica_apis.ReplicaSourceUrlApi.as_view(),
        name="api-bdb-replica-source-url",
    ),
    path(
        "bdbs/<int:uid>/actions/regenerate_admin_password",
        replica_apis.RegenerateAdminPasswordApi.as_view(),
        name="api-bdb-regenerate-admin-password",
    ),
    path(
        "bdbs/<int:uid>/actions/replica_sync_restart",
        bdb_apis.BdbReplicaSyncRestartApi.as_view(resource=bdb_apis.bdb_data),
        name="api-bdb-replica-sync-restart",
    ),
    path(
        "bdbs/<int:uid>/actions/update_credentials",
        bdb_apis.BdbCredentialsUpdateApi.as_view(resource=bdb_apis.bdb_data),
        name="api-bdb-update-credentials",
    ),
    path(
        "bdbs/<int:uid>/actions/replica_preflight",
        replica_apis.ReplicaPreflightApi.as_view(),
        name="api-bdb-replica-preflight",
    ),
    path(
        "bdbs/<int:uid>/actions/replica_verify",
        replica_apis.ReplicaVerifyApi.as_view(),
        name="api-bdb-replica-verify",
    ),
    path(
        "bdbs/<int:uid>/actions/replica_verify_cancel",
        replica_apis.ReplicaVerifyCancelApi.as_view(),
        name="api-bdb-replica-verify-cancel",
    ),
    path(
        "bdbs/<int:uid>/replica_verify",
        replica_apis.ReplicaVerifyRunsApi.as_view(),
        name="api-bdb-replica-verify-runs",
    ),
    path(
        "bdbs/<int:uid>/actions/replica_migrate",
        replica_apis.ReplicaMigrateApi.as_view(),
        name="api-bdb-replica-migrate",
    ),
    path(
        "bdbs/<int:uid>/actions/replica_migrate_step",
        replica_apis.ReplicaMigrateStepApi.as_view(),
        name="api-bdb-replica-migrate-step",
    ),
    path(
        "bdbs/<int:uid>/replica_migrate",
        replica_apis.ReplicaMigrateStatusApi.as_view(),
        name="api-bdb-replica-migrate-status",
    ),
    path(
        "bdbs/<int:uid>/flush",
        bdb_apis.BdbFlushApi.as_view(resource=bdb_apis.bdb_data),
        name="api-bdb-flush",
    ),
    path(
        "bdbs/<int:uid>/reset_admin_pass",
        bdb_apis.BdbResetAdminPassApi.as_view(resource=bdb_apis.bdb_data),
        name="api-bdb-reset-admin-pass",
    ),
    path(
        "bdbs/<int:uid>/syncer_state/replica",
        replica_apis.SyncerStateApi.as_view(),
        name="api-bdb-syncer-state-replica",
    ),
    path(
        "bdbs/<int:uid>/replica_events",
        replica_apis.ReplicaEventsApi.as_view(),
        name="api-bdb-replica-events",
    ),
    path(
        "bdbs/<int:uid>/sync_source_stats",
        replica_apis.SyncSourceStatsApi.as_view(),
        name="api-bdb-sync-source-stats",
    ),
    path(
        "bdbs/<int:uid>/sync_source_stats/<int:source_uid>",
        replica_apis.SyncSourceStatsOneApi.as_view(),
        name="api-bdb-sync-source-stats-one",
    ),
    path("cluster", apis.ClusterApi.as_view(), name="api-cluster"),
    path("cluster/certificates", apis.CertificatesApi.as_view(), name="api-certificates"),
    path("cluster/update_cert", apis.UpdateCertApi.as_view(), name="api-update-cert"),
    path("nodes", apis.NodeListApi.as_view(), name="api-node-list"),
    path("users", apis.UserListApi.as_view(), name="api-user-list"),
    path("users/<int:uid>", apis.UserDetailApi.as_view(), name="api-user-detail"),
    path("schema", bdb_apis.SchemaApi.as_view(), name="api-schema"),
]
