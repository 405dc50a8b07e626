"""`manage.py import_numbers FILE`: add a carrier's CSV of numbers to the inventory, all or
nothing (format: docs/operations.md, "Phone number inventory")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apps.numbers import inventory
from apps.numbers.exceptions import InventoryImportError


class Command(BaseCommand):
    help = "Import phone numbers from a CSV file; an invalid row refuses the whole file."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("file", help="CSV file, UTF-8, first line naming the columns")

    def handle(self, *args: Any, file: str, **options: Any) -> None:
        path = Path(file)
        try:
            # utf-8-sig: spreadsheets often start their CSV exports with a byte-order mark.
            with path.open(newline="", encoding="utf-8-sig") as rows:
                result = inventory.import_numbers(rows, source_name=path.name)
        except FileNotFoundError:
            raise CommandError(f"No such file: {file}") from None
        except OSError as error:
            raise CommandError(f"Cannot read {file}: {error.strerror or error}") from None
        except InventoryImportError as error:
            for line, message in error.errors:
                self.stderr.write(f"line {line}: {message}")
            raise CommandError(
                f"{path.name} was not imported: {len(error.errors)} problem(s); "
                "nothing was written."
            ) from None
        self.stdout.write(result.summary())
