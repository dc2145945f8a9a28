"""Page forms: they check the shape of the input only; the services decide what is allowed."""

from __future__ import annotations

from typing import Any, ClassVar

from django import forms
from django.conf import settings
from django.http import QueryDict

from console.certificates import PEM_MAX_CHARS
from console.errors import ApplicationError
from console.models import Persistence, TlsMode

MB = 1024 * 1024


class ServiceErrorForm(forms.Form):
    """A form that shows an ApplicationError from a service next to the field that caused it."""

    # service field name -> form field name
    service_fields: ClassVar[dict[str, str]] = {}

    def add_service_error(self, exc: ApplicationError) -> None:
        # Unknown or missing field: the error belongs to the whole form.
        self.add_error(self.service_fields.get(exc.field or ""), exc.message)


def _password_field(label: str, help_text: str) -> forms.CharField:
    # Never rendered back into the page (PasswordInput drops the value); spaces are significant.
    return forms.CharField(
        label=label,
        required=False,
        strip=False,
        help_text=help_text,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )


TLS_CHOICES = [
    (TlsMode.DISABLED, "None"),
    (TlsMode.REPLICA_SSL, "Between databases only"),
    (TlsMode.ENABLED, "All connections"),
]
TRUSTED_FIELD = "authentication_ssl_client_certs"
TLS_SERVICE_FIELDS = {
    "tls_mode": "tls_mode",
    "enforce_client_authentication": "enforce_client_authentication",
}


class TlsForm(ServiceErrorForm):
    """The TLS section of Create and Edit database: the mode, client authentication and the
    trusted certificates, a list of `client_cert` text boxes (the page's "+ Add certificate"
    adds one) and `client_cert_file` uploads (several may be chosen)."""

    tls_mode = forms.ChoiceField(
        label="TLS",
        choices=TLS_CHOICES,
        initial=TlsMode.DISABLED,
        # Not posted at all (a script, an older page): TLS stays as it is (None on create).
        required=False,
        widget=forms.RadioSelect,
        help_text="Between databases only: applications keep the plain port, Replica Of uses a "
        "second, TLS port. All connections: the database's port speaks TLS only.",
    )
    enforce_client_authentication = forms.BooleanField(
        label="Enforce client authentication",
        required=False,
        help_text="Only clients presenting one of the trusted certificates below (or this "
        "cluster's syncer certificate) may connect over TLS.",
    )

    def __init__(self, *args: Any, trusted: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # What the text boxes show: what was posted, else the saved list.
        if self.is_bound:
            posted = self.data
            boxes = posted.getlist("client_cert") if isinstance(posted, QueryDict) else []
            self.trusted = [str(t) for t in boxes]
        else:
            self.trusted = list(trusted or [])

    def clean(self) -> dict[str, Any] | None:
        data = super().clean()
        if data is None:
            return data
        pems = [t.replace("\r\n", "\n").strip() for t in self.trusted]
        for upload in self.files.getlist("client_cert_file") if self.files else []:
            raw = upload.read(PEM_MAX_CHARS + 1)
            if len(raw) > PEM_MAX_CHARS:
                self.add_error(None, f"{upload.name}: larger than a certificate's PEM file.")
                continue
            try:
                pems.append(raw.decode("utf-8").strip())
            except UnicodeDecodeError:
                self.add_error(None, f"{upload.name}: not a PEM text file.")
        data["client_certificates"] = [p for p in pems if p]
        return data

    def add_service_error(self, exc: ApplicationError) -> None:
        field = exc.field or ""
        if field.startswith(f"{TRUSTED_FIELD}["):
            index = int(field[len(TRUSTED_FIELD) + 1 : -1])
            self.add_error(None, f"Trusted certificate {index + 1}: {exc.message}")
        else:
            super().add_service_error(exc)

    def tls_kwargs(self) -> dict[str, Any]:
        """The TLS settings for the service; nothing when the TLS section was not posted."""
        data = self.cleaned_data
        if not data["tls_mode"]:
            return {}
        return {
            "tls_mode": data["tls_mode"],
            "enforce_client_authentication": data["enforce_client_authentication"],
            "client_certificates": data["client_certificates"],
        }


class DatabaseCreateForm(TlsForm):
    service_fields: ClassVar[dict[str, str]] = {
        "name": "name",
        "memory_size": "memory_mb",
        "shards_count": "shards_count",
        "port": "port",
        "authentication_redis_pass": "password",
        "data_persistence": "persistence",
        **TLS_SERVICE_FIELDS,
    }

    name = forms.CharField(
        max_length=63,
        help_text="Starts with a letter; letters, digits and '-'.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    memory_mb = forms.IntegerField(
        label="Memory limit (MB)",
        initial=100,
        help_text="Between 1 MB and the node's free memory.",
        widget=forms.NumberInput(attrs={"min": 1}),
    )
    shards_count = forms.IntegerField(
        label="Shards",
        initial=1,
        help_text="1 runs one redis-server; more form a Redis Cluster (up to 64).",
        widget=forms.NumberInput(attrs={"min": 1, "max": 64}),
    )
    port = forms.IntegerField(
        required=False,
        help_text="Leave empty to pick a free port.",
        widget=forms.NumberInput(attrs={"min": settings.DB_PORT_MIN, "max": settings.DB_PORT_MAX}),
    )
    password = _password_field("Password of the default user", "Leave empty for no password.")
    persistence = forms.ChoiceField(
        choices=Persistence.choices, initial=Persistence.DISABLED, widget=forms.RadioSelect
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields[
            "port"
        ].help_text = (
            f"Leave empty to pick a free port ({settings.DB_PORT_MIN}-{settings.DB_PORT_MAX})."
        )

    def service_kwargs(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "name": data["name"],
            "memory_size": data["memory_mb"] * MB,
            "shards_count": data["shards_count"],
            "port": data["port"],
            "password": data["password"],
            "persistence": data["persistence"],
            **self.tls_kwargs(),
        }


class DatabaseEditForm(TlsForm):
    service_fields: ClassVar[dict[str, str]] = {
        "memory_size": "memory_mb",
        "authentication_redis_pass": "password",
        **TLS_SERVICE_FIELDS,
    }

    memory_mb = forms.IntegerField(
        label="Memory limit (MB)", widget=forms.NumberInput(attrs={"min": 1})
    )
    password = _password_field(
        "New password", "For the default user. Leave empty to keep the current one."
    )
    remove_password = forms.BooleanField(
        label="Remove the password (anyone who can reach the port may connect)", required=False
    )

    def clean(self) -> dict[str, Any] | None:
        data = super().clean()
        if data and data.get("password") and data.get("remove_password"):
            self.add_error("remove_password", "Either set a new password or remove it, not both.")
        return data

    def service_kwargs(self) -> dict[str, Any]:
        """Only what the operator changed: None leaves a setting as it is."""
        data = self.cleaned_data
        # A memory size that is not a whole number of MB shows rounded; unchanged means untouched.
        memory = data["memory_mb"] * MB if "memory_mb" in self.changed_data else None
        password: str | None = None
        if data["remove_password"]:
            password = ""
        elif data["password"]:
            password = data["password"]
        return {"memory_size": memory, "password": password, **self.tls_kwargs()}


class SecretTextarea(forms.Textarea):
    """A textarea that never renders its value back into the page (private keys)."""

    def format_value(self, value: Any) -> str | None:
        return None


def _pem_text(form: forms.Form, text_field: str, file_field: str, what: str) -> str:
    """The PEM from the upload if one was given, else from the paste box."""
    upload = form.cleaned_data.get(file_field)
    if upload:
        raw = upload.read(PEM_MAX_CHARS + 1)
        if len(raw) > PEM_MAX_CHARS:
            form.add_error(
                file_field,
                f"The file is larger than {PEM_MAX_CHARS // 1024} KiB: not a {what} PEM file.",
            )
            return ""
        try:
            return str(raw.decode("utf-8"))
        except UnicodeDecodeError:
            form.add_error(file_field, f"The file is not text: a {what} PEM file is expected.")
            return ""
    text = str(form.cleaned_data.get(text_field) or "")
    if not text.strip():
        form.add_error(text_field, f"Paste the {what} or upload its file.")
    return text


class CertificateReplaceForm(ServiceErrorForm):
    """A new certificate and its private key, each pasted or uploaded (the upload wins)."""

    service_fields: ClassVar[dict[str, str]] = {
        "certificate": "certificate_pem",
        "key": "private_key_pem",
    }

    certificate_pem = forms.CharField(
        label="Certificate (PEM)",
        required=False,
        strip=False,
        help_text="Starts with -----BEGIN CERTIFICATE-----.",
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false", "class": "mono"}),
    )
    certificate_file = forms.FileField(label="Or upload the certificate file", required=False)
    private_key_pem = forms.CharField(
        label="Private key (PEM)",
        required=False,
        strip=False,
        help_text="Unencrypted PKCS#8, PKCS#1 or SEC1. It is stored encrypted and never shown.",
        widget=SecretTextarea(
            attrs={"rows": 6, "spellcheck": "false", "autocomplete": "off", "class": "mono"}
        ),
    )
    private_key_file = forms.FileField(label="Or upload the private key file", required=False)

    def clean(self) -> dict[str, Any] | None:
        data = super().clean()
        if data is not None:
            data["certificate"] = _pem_text(
                self, "certificate_pem", "certificate_file", "certificate"
            )
            data["private_key"] = _pem_text(
                self, "private_key_pem", "private_key_file", "private key"
            )
        return data

    def add_service_error(self, exc: ApplicationError) -> None:
        # The error belongs next to what the operator gave: the upload if there was one.
        uploads = {"certificate": "certificate_file", "key": "private_key_file"}
        upload = uploads.get(exc.field or "")
        if upload and self.cleaned_data.get(upload):
            self.add_error(upload, exc.message)
        else:
            super().add_service_error(exc)

    def service_kwargs(self) -> dict[str, str]:
        return {
            "certificate_pem": self.cleaned_data["certificate"],
            "private_key_pem": self.cleaned_data["private_key"],
        }


class AuditFilterForm(forms.Form):
    action = forms.CharField(
        required=False, label="Action contains", widget=forms.TextInput(attrs={"type": "search"})
    )
    object_type = forms.ChoiceField(required=False, label="Object type")
    actor = forms.CharField(required=False, label="Actor")

    def __init__(self, *args: Any, object_types: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["object_type"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [("", "Any"), *((t, t) for t in object_types)]

    def filters(self) -> dict[str, str]:
        if not self.is_valid():
            return {"action": "", "object_type": "", "actor": ""}
        return {key: self.cleaned_data[key].strip() for key in ("action", "object_type", "actor")}


class UserCreateForm(ServiceErrorForm):
    """Users → Add user: sign-in name, role, password, e-mail (optional)."""

    service_fields: ClassVar[dict[str, str]] = {
        "name": "name",
        "role": "role",
        "password": "password",
        "email": "email",
    }

    name = forms.CharField(
        max_length=150,
        help_text="The sign-in name: letters, digits and . _ @ + -",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    role = forms.ChoiceField(
        choices=[("viewer", "Viewer: reads everything except secrets"), ("admin", "Admin")],
        initial="viewer",
    )
    password = forms.CharField(
        strip=False,
        max_length=512,
        help_text="At least 8 characters, not a common password.",
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    email = forms.EmailField(required=False, max_length=254)


class UserPasswordForm(ServiceErrorForm):
    """Users → Change password."""

    service_fields: ClassVar[dict[str, str]] = {"password": "password"}

    password = forms.CharField(
        label="New password",
        strip=False,
        max_length=512,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
