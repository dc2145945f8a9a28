"""Replica Of forms: the shape of what the pages send; replication.services decides the rest."""

from __future__ import annotations

import json
import re
from typing import Any

from django import forms

from console.certificates import PEM_MAX_CHARS
from console.errors import ApplicationError
from console.models import Database
from replication.models import ReplicaSource
from replication.pending import pending_get, pending_put
from replication.sources import MAX_SOURCES, SourceInput, source_input_of
from replication.syncer.urls import UrlError, parse_redis_url

# zlib level 6 over the sync gateway when the operator turns compression on (DESIGN §3).
COMPRESSION_LEVEL = 6
_SOURCE_ERROR = re.compile(r"^replica_sources\[(\d+)\]\.(\w+)$")


class ExternalSourceForm(forms.Form):
    """The External tab of the "Connect a Replica Of source database" dialog."""

    uri = forms.CharField(
        label="Source URL",
        max_length=2048,
        help_text=(
            "redis://admin:<password>@host:port for a database of another cluster (its "
            "'Get Replica Of source URL'); redis://:<password>@host:port or redis://host:port "
            "for any Redis; rediss:// for TLS. Percent-encode special characters."
        ),
        widget=forms.TextInput(
            attrs={
                "autocomplete": "off",
                "spellcheck": "false",
                "placeholder": "redis://:password@host:port",
            }
        ),
    )
    encryption = forms.BooleanField(label="TLS", required=False)
    server_cert = forms.CharField(
        label="Source cluster's certificate (PEM)",
        required=False,
        max_length=PEM_MAX_CHARS,
        help_text="Its proxy certificate, to verify the server. Paste it or choose the file.",
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false", "class": "mono"}),
    )
    replication_tls_sni = forms.CharField(
        label="Server name (SNI)",
        required=False,
        max_length=253,
        help_text="Leave empty to use the host of the URL.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    compression = forms.BooleanField(
        label="Compression",
        required=False,
        help_text="zlib through the source cluster's sync gateway: less bandwidth, more CPU.",
    )

    def clean(self) -> dict[str, Any] | None:
        data = super().clean()
        if data and not data.get("encryption"):
            # Hidden fields of a turned-off TLS toggle do not count.
            data["server_cert"] = ""
            data["replication_tls_sni"] = ""
        return data

    def source_input(self) -> SourceInput:
        data = self.cleaned_data
        return SourceInput(
            uri=data["uri"].strip(),
            encryption=data["encryption"],
            # Browsers send a textarea with CRLF line ends; PEM is stored with LF.
            server_cert=data["server_cert"].replace("\r\n", "\n").strip(),
            replication_tls_sni=data["replication_tls_sni"].strip(),
            compression=COMPRESSION_LEVEL if data["compression"] else 0,
        )


def _redacted(uri: str) -> str:
    try:
        return parse_redis_url(uri).redacted()
    except UrlError:
        return ""


def _settings_of(source: SourceInput | ReplicaSource) -> dict[str, Any]:
    """What the dialog shows when the source is edited in place (the pencil on its row): its
    TLS material and compression, and its URL with the password as `***` (never the password)."""
    return {
        "encryption": source.encryption,
        "compression": source.compression,
        "server_cert": source.server_cert,
        "replication_tls_sni": source.replication_tls_sni,
    }


def _display_row(row: dict[str, Any]) -> dict[str, Any]:
    """What the page shows again of a row that was refused: its reference and name, never a
    posted URL (it may hold a password)."""
    shown: dict[str, Any] = {k: row[k] for k in ("keep", "database", "pending") if k in row}
    return {
        **shown,
        "name": str(row.get("name", ""))[:300] or "(external)",
        "kind": "internal" if "database" in row else str(row.get("kind", "external"))[:20],
    }


def _row_of_source(source: ReplicaSource, name: str) -> dict[str, Any]:
    """A saved source as a row of the edit list: referred to by uid, its URL never sent."""
    internal = source.source_database_id is not None
    return {
        "keep": source.uid,
        "name": name,
        "kind": "internal" if internal else "external",
        "uri_redacted": "" if internal else _redacted(source.external_uri),
        **_settings_of(source),
    }


def pending_row(token: str, name: str, source: SourceInput) -> dict[str, Any]:
    """A checked, unsaved external source as a row of the edit list: its token, never its URL."""
    return {
        "pending": token,
        "name": name,
        "kind": "external",
        "uri_redacted": _redacted(source.uri),
        **_settings_of(source),
    }


class EmptyHiddenInput(forms.HiddenInput):
    """The source list's field: the page's script fills it from the rows (which hold no
    password); what was posted (which may hold one) is never rendered back."""

    def format_value(self, value: Any) -> str | None:
        return None


class ReplicaSourcesForm(forms.Form):
    """The Replica Of part of Database → Edit: the wanted source list as JSON rows.

    A row is `{"keep": <source uid>}` for a saved source, `{"database": <uid>}` for a database of
    this cluster, `{"pending": <token>}` for an external source checked by the dialog (kept in
    the session, replication.pending), or `{"uri": ..., "encryption", "server_cert",
    "replication_tls_sni", "compression"}` for an external URL posted directly (it is kept in the
    session too, so a page rendered again carries only its token); `name` is for display only.
    """

    sources = forms.CharField(required=False, widget=EmptyHiddenInput)
    confirm_flush = forms.BooleanField(required=False, widget=forms.HiddenInput)
    preflight_override = forms.BooleanField(
        required=False, label="Save even though the pre-flight failed (audited)"
    )

    def __init__(
        self,
        *args: Any,
        destination: Database,
        saved: list[ReplicaSource],
        session: Any,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.session = session
        self.destination = destination
        self.saved = {s.uid: s for s in saved}
        self.rows: list[dict[str, Any]] = []
        self.inputs: list[SourceInput] = []
        self.changed = False

    def initial_rows(self, names: dict[int, str]) -> list[dict[str, Any]]:
        return [_row_of_source(s, names.get(s.uid, "")) for s in self.saved.values()]

    def clean_sources(self) -> str:
        raw = self.cleaned_data.get("sources") or "[]"
        try:
            rows = json.loads(raw)
        except ValueError:
            raise forms.ValidationError("The source list is not valid JSON.") from None
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise forms.ValidationError("The source list must be a list of sources.")
        # Every row is kept for the page rendered again, refused ones with their error under
        # them: a refused Save never throws away what the operator entered.
        refused: list[str] = []
        for row in rows:
            try:
                self.rows.append(self._clean_row(row))
            except forms.ValidationError as exc:
                refused.append(exc.messages[0])
                self.rows.append({**_display_row(row), "error": exc.messages[0]})
            else:
                self.inputs.append(self._source_input(self.rows[-1]))
        kept = [r["keep"] for r in self.rows if "keep" in r]
        self.changed = len(kept) != len(self.rows) or set(kept) != set(self.saved)
        if len(rows) > MAX_SOURCES:
            raise forms.ValidationError(
                f"A destination has at most {MAX_SOURCES} sources: {len(rows)} are listed, "
                f"remove {len(rows) - MAX_SOURCES}."
            )
        if refused:
            raise forms.ValidationError(
                refused[0]
                if len(refused) == 1
                else f"{len(refused)} sources were refused: see the messages under them."
            )
        return str(raw)

    def _clean_row(self, row: dict[str, Any]) -> dict[str, Any]:
        name = str(row.get("name", ""))[:300]
        if "keep" in row:
            uid = row["keep"]
            if not isinstance(uid, int) or uid not in self.saved:
                raise forms.ValidationError(
                    "A source changed meanwhile: reload the page and edit again."
                )
            return _row_of_source(self.saved[uid], name)
        if "database" in row:
            if not isinstance(row["database"], int):
                raise forms.ValidationError("A source database is not a number.")
            return {"database": row["database"], "name": name, "kind": "internal"}
        if "pending" in row:
            kept = pending_get(
                self.session, destination_uid=self.destination.pk, token=row["pending"]
            )
            if kept is None:
                raise forms.ValidationError(
                    f"Source {name or '(external)'} was not kept (signed out meanwhile?): "
                    "remove it and add it again."
                )
            return pending_row(row["pending"], name, kept)
        form = ExternalSourceForm(
            {
                "uri": row.get("uri", ""),
                "encryption": bool(row.get("encryption")),
                "server_cert": row.get("server_cert", ""),
                "replication_tls_sni": row.get("replication_tls_sni", ""),
                "compression": bool(row.get("compression")),
            }
        )
        if not form.is_valid():
            message = next(iter(form.errors.values()))[0]
            raise forms.ValidationError(f"Source {name or '(external)'}: {message}")
        data = form.source_input()
        token = pending_put(self.session, destination_uid=self.destination.pk, source=data)
        return pending_row(token, name, data)

    def _source_input(self, row: dict[str, Any]) -> SourceInput:
        if "keep" in row:
            return source_input_of(self.saved[row["keep"]])
        if "database" in row:
            return SourceInput(source_database_uid=row["database"])
        kept = self._pending(row["pending"])
        assert kept is not None  # _clean_row checked it
        return kept

    def _pending(self, token: object) -> SourceInput | None:
        return pending_get(self.session, destination_uid=self.destination.pk, token=token)

    def clean(self) -> dict[str, Any] | None:
        data = super().clean()
        if data is not None and self.changed and not data.get("confirm_flush"):
            name = self.destination.name
            self.add_error(
                "sources",
                f"Saving new sources flushes {name}: confirm to continue."
                if self.rows
                else f"Removing Replica Of keeps the data of {name} and makes it writable: "
                "confirm to continue.",
            )
        return data

    def add_service_error(self, exc: ApplicationError) -> None:
        """`replica_sources[i].<field>` goes to row i; anything else to the whole list."""
        match = _SOURCE_ERROR.match(exc.field or "")
        if match and int(match.group(1)) < len(self.rows):
            self.rows[int(match.group(1))]["error"] = exc.message
            self.add_error(None, "A source was refused: see the message under it.")
        else:
            self.add_error("sources", exc.message)
