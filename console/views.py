"""Pages of the cluster domain: sign-in, creating a database, nodes, cluster, certificates, audit.
Each view validates shape, fetches with a selector, calls one service and renders; refused
operations come back from the services as ApplicationError. The pages of a database, which show
its Replica Of side too, are assembled in the roof (config.views)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from console import selectors, services
from console.auth import login_failed, login_locked_for, login_succeeded
from console.decorators import admin_required, page_user
from console.errors import ApplicationError
from console.forms import (
    AuditFilterForm,
    CertificateReplaceForm,
    DatabaseCreateForm,
    UserCreateForm,
    UserPasswordForm,
)
from console.models import Certificate, Database, DatabaseStatus

# While a database is in one of these, its page reloads itself until the node is done.
PENDING_STATUSES = frozenset(
    {DatabaseStatus.PENDING, DatabaseStatus.CHANGE_PENDING, DatabaseStatus.DELETE_PENDING}
)
EDITABLE_STATUSES = frozenset({DatabaseStatus.ACTIVE, DatabaseStatus.ERROR})
AUDIT_PAGE_SIZE = 50
# The Security page warns this long before a certificate expires.
EXPIRY_WARNING = timedelta(days=30)
THROTTLED_MESSAGE = "Too many failed sign-ins for this account. Wait a few minutes and try again."

# ---------------------------------------------------------------- sign in / out


class LoginView(auth_views.LoginView):
    """Django's sign-in page with console.auth's throttling: an account that failed too often
    from this address (or from everywhere) is refused before its password is even checked."""

    template_name = "registration/login.html"
    redirect_authenticated_user = True

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        username = str(request.POST.get("username", ""))[:150]
        wait = login_locked_for(request, username)
        if wait:
            form = AuthenticationForm(request, initial={"username": username})
            context = self.get_context_data(form=form, throttled_message=THROTTLED_MESSAGE)
            response = self.render_to_response(context, status=429)
            response["Retry-After"] = str(wait)
            return response
        return super().post(request, *args, **kwargs)

    def form_valid(self, form: AuthenticationForm) -> HttpResponse:
        login_succeeded(self.request, form.get_user().get_username())
        return super().form_valid(form)

    def form_invalid(self, form: AuthenticationForm) -> HttpResponse:
        login_failed(self.request, str(form.data.get("username", ""))[:150])
        return super().form_invalid(form)


class LogoutView(auth_views.LogoutView):
    """Sign out (POST only, as Django requires)."""


# ---------------------------------------------------------------- databases


@require_GET
def home(request: HttpRequest) -> HttpResponseRedirect:
    return redirect("database-list")


@require_http_methods(["GET", "POST"])
@admin_required
def database_create(request: HttpRequest) -> HttpResponse:
    form = DatabaseCreateForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            database = services.database_create(actor=page_user(request), **form.service_kwargs())
        except ApplicationError as exc:
            form.add_service_error(exc)
        else:
            messages.success(request, f"Database {database.name} is being created.")
            return redirect("database-detail", uid=database.pk)
    return render(request, "console/database_create.html", {"form": form})


def database_context(database: Database, tab: str) -> dict[str, Any]:
    """What every tab of a database page shows about the database itself."""
    return {
        "database": database,
        "shards": list(database.shards.all()),
        "tab": tab,
        "pending": database.status in PENDING_STATUSES,
        # database_update refuses other states; the Edit button is hidden until then.
        "editable": database.status in EDITABLE_STATUSES,
    }


# ---------------------------------------------------------------- nodes, cluster, audit log


@require_GET
def node_list(request: HttpRequest) -> HttpResponse:
    return render(request, "console/node_list.html", {"nodes": selectors.node_list_with_usage()})


@require_GET
def cluster_detail(request: HttpRequest) -> HttpResponse:
    return render(request, "console/cluster.html", {"tab": "configuration"})


def _certificate(kind: str) -> Certificate:
    # Private keys never leave the database for a page: not even into the template context.
    cert = selectors.certificate_list().defer("private_key_pem").filter(kind=kind).first()
    if cert is None:
        raise Http404("no such certificate")
    return cert


@require_GET
def cluster_security(request: HttpRequest) -> HttpResponse:
    certificates = selectors.certificate_list().defer("private_key_pem")
    now = timezone.now()
    context = {
        "certificates": certificates,
        "now": now,
        "soon": now + EXPIRY_WARNING,
        "tls_databases": services.tls_databases(),
        "tab": "security",
    }
    return render(request, "console/cluster_security.html", context)


@require_GET
def certificate_download(request: HttpRequest, kind: str) -> HttpResponse:
    """The certificate alone (public), as a .pem file."""
    cert = _certificate(kind)
    response = HttpResponse(cert.certificate_pem, content_type="application/x-pem-file")
    response["Content-Disposition"] = f'attachment; filename="{cert.kind}-certificate.pem"'
    return response


@require_http_methods(["GET", "POST"])
@admin_required
def certificate_replace(request: HttpRequest, kind: str) -> HttpResponse:
    cert = _certificate(kind)
    form = CertificateReplaceForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            new = services.certificate_replace(
                actor=page_user(request), kind=cert.kind, **form.service_kwargs()
            )
        except ApplicationError as exc:
            form.add_service_error(exc)
        else:
            messages.success(
                request,
                f"{new.get_kind_display()} replaced. New fingerprint {new.fingerprint_sha256}.",
            )
            return redirect("cluster-security")
    context = {
        "certificate": cert,
        "form": form,
        "tab": "security",
        "tls_databases": services.tls_databases(),
    }
    return render(request, "console/certificate_replace.html", context)


# ---------------------------------------------------------------- users


def _users_page(
    request: HttpRequest,
    *,
    form: UserCreateForm | None = None,
    password_form: UserPasswordForm | None = None,
    password_for: int | None = None,
    status: int = 200,
) -> HttpResponse:
    context = {
        "users": selectors.user_list(),
        "form": form or UserCreateForm(),
        "password_form": password_form or UserPasswordForm(),
        "password_for": password_for,
    }
    return render(request, "console/user_list.html", context, status=status)


@require_http_methods(["GET", "POST"])
@admin_required
def user_list(request: HttpRequest) -> HttpResponse:
    """Users: the list, and Add user (admins only: the list is Redis Enterprise's admin view)."""
    if request.method != "POST":
        return _users_page(request)
    form = UserCreateForm(request.POST)
    if form.is_valid():
        try:
            user = services.user_create(actor=page_user(request), **form.cleaned_data)
        except ApplicationError as exc:
            form.add_service_error(exc)
        else:
            messages.success(request, f"User {user.username} created ({user.role}).")
            return redirect("user-list")
    return _users_page(request, form=form)


USER_ACTIONS = {"enable", "disable", "make-admin", "make-viewer", "password", "delete"}


@require_http_methods(["POST"])
@admin_required
def user_change(request: HttpRequest, uid: int, action: str) -> HttpResponse:
    """One change of a user, from a button of the Users page."""
    if action not in USER_ACTIONS:
        raise Http404("no such action")
    user = selectors.user_get(uid=uid)
    actor = page_user(request)
    password_form = None
    try:
        if action == "delete":
            services.user_delete(actor=actor, user=user)
            messages.success(request, f"User {user.username} deleted.")
        elif action == "password":
            password_form = UserPasswordForm(request.POST)
            if not password_form.is_valid():
                return _users_page(request, password_form=password_form, password_for=uid)
            services.user_update(
                actor=actor, user=user, password=password_form.cleaned_data["password"]
            )
            messages.success(request, f"Password of {user.username} changed.")
        else:
            services.user_update(
                actor=actor,
                user=user,
                active={"enable": True, "disable": False}.get(action),
                role={"make-admin": "admin", "make-viewer": "viewer"}.get(action),
            )
            messages.success(request, f"User {user.username} updated.")
    except ApplicationError as exc:
        if password_form is not None:
            password_form.add_service_error(exc)
            return _users_page(request, password_form=password_form, password_for=uid)
        messages.error(request, exc.message)
    return redirect("user-list")


@require_GET
def audit_log(request: HttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET, object_types=selectors.audit_object_types())
    entries = selectors.audit_list(**form.filters())
    page = Paginator(entries, AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "console/audit_log.html",
        {"form": form, "page": page, "query": query.urlencode()},
    )
