"""Create a console user from automation (e.g. the first admin of a new installation), without
the shell: `manage.py console_user NAME --role admin`, the password from `--password-stdin` or
`CONSOLE_USER_PASSWORD`, else generated and printed once. `--if-missing` makes it idempotent."""

from __future__ import annotations

import os
import secrets
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from console import services
from console.errors import ApplicationError
from console.models import User


class Command(BaseCommand):
    help = "Create a console user (admin or viewer); audited like the Users page."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="the sign-in name")
        parser.add_argument("--role", choices=["admin", "viewer"], default="admin")
        parser.add_argument("--email", default="")
        parser.add_argument(
            "--password-stdin",
            action="store_true",
            help="read the password from the first line of standard input",
        )
        parser.add_argument(
            "--if-missing",
            action="store_true",
            help="do nothing (exit 0) when a user of that name exists",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        name: str = options["name"]
        if options["if_missing"] and User.objects.filter(username__iexact=name).exists():
            self.stdout.write(f"user {name} exists: nothing to do")
            return
        generated = False
        if options["password_stdin"]:
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = os.environ.get("CONSOLE_USER_PASSWORD", "")
        if not password:
            password, generated = secrets.token_urlsafe(16), True
        try:
            services.user_create(
                actor=None,
                name=name,
                password=password,
                role=options["role"],
                email=options["email"],
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"user {name} created ({options['role']})")
        if generated:
            # Printed once, to the operator's terminal, like bootstrap's first admin login.
            self.stdout.write(f"LOGIN  user: {name}  password: {password}")
