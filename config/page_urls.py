from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from config import views as database_views
from console import views
from replication import views as replica_views

urlpatterns: list[URLPattern | URLResolver] = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("", views.home, name="home"),
    path("databases/", database_views.database_list, name="database-list"),
    path("databases/new/", views.database_create, name="database-create"),
    path("databases/<int:uid>/", database_views.database_detail, name="database-detail"),
    path("databases/<int:uid>/edit/", database_views.database_edit, name="database-edit"),
    path("databases/<int:uid>/delete/", database_views.database_delete, name="database-delete"),
    path(
        "databases/<int:uid>/replica-of/source-check/",
        replica_views.source_check,
        name="replica-source-check",
    ),
    path("databases/<int:uid>/replica-of/sync/", replica_views.sync_action, name="replica-sync"),
    path(
        "databases/<int:uid>/replica-of/verify/", replica_views.verify_action, name="replica-verify"
    ),
    path(
        "databases/<int:uid>/replica-of/preflight/",
        replica_views.preflight_action,
        name="replica-preflight",
    ),
    path("databases/<int:uid>/migrate/", replica_views.cutover_page, name="replica-migrate"),
    path(
        "databases/<int:uid>/migrate/action/",
        replica_views.cutover_action,
        name="replica-migrate-action",
    ),
    path("databases/<int:uid>/source-url/", replica_views.source_url, name="replica-source-url"),
    path(
        "databases/<int:uid>/source-url/regenerate/",
        replica_views.password_regenerate,
        name="replica-password-regenerate",
    ),
    path("nodes/", views.node_list, name="node-list"),
    path("cluster/", views.cluster_detail, name="cluster"),
    path("cluster/security/", views.cluster_security, name="cluster-security"),
    path(
        "cluster/security/certificates/<str:kind>.pem",
        views.certificate_download,
        name="certificate-download",
    ),
    path(
        "cluster/security/certificates/<str:kind>/replace/",
        views.certificate_replace,
        name="certificate-replace",
    ),
    path("users/", views.user_list, name="user-list"),
    path("users/<int:uid>/<str:action>/", views.user_change, name="user-change"),
    path("alerts/", replica_views.alert_list, name="alert-list"),
    path("audit/", views.audit_log, name="audit-log"),
]
