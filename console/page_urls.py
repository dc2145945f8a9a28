from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from console import views

urlpatterns: list[URLPattern | URLResolver] = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("", views.home, name="home"),
    path("databases/", views.database_list, name="database-list"),
    path("databases/new/", views.database_create, name="database-create"),
    path("databases/<int:uid>/", views.database_detail, name="database-detail"),
    path("databases/<int:uid>/edit/", views.database_edit, name="database-edit"),
    path("databases/<int:uid>/delete/", views.database_delete, name="database-delete"),
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
    path("audit/", views.audit_log, name="audit-log"),
]
