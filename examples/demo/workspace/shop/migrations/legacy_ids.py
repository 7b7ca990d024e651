"""Migration 0007: legacy integer customer numbers -> typed account ids.

Before 0.3, order records referred to customers by the integer key of the old
SQL shop (``{"customer": 1234}``). This migration rewrites them to the prefixed
id form (``{"customer_id": "usr_000000001234"}``) and tags each record with the
id type it now holds, which makes the migration idempotent: exports that were
half-migrated by an interrupted run can simply be fed through again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from shop.ids import UserId

MIGRATION = "0007_legacy_customer_ids"
SCHEMA_VERSION = 2

Record = dict[str, Any]


@dataclass
class MigrationReport:
    migrated: int = 0
    skipped: int = 0
    failed: list[tuple[int, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def legacy_user_id(number: object) -> UserId:
    """The account id that legacy customer ``number`` maps to."""
    if isinstance(number, bool) or not isinstance(number, int) or number <= 0:
        raise ValueError(f"bad legacy customer number {number!r}")
    return UserId(f"{UserId.prefix}{number:012d}")


def is_migrated(record: Record) -> bool:
    return record.get("id_types", {}).get("customer_id") == UserId.__name__


def migrate_record(record: Record) -> Record:
    """A migrated copy of ``record``; raises KeyError/ValueError if impossible."""
    migrated = {key: value for key, value in record.items() if key != "customer"}
    migrated["customer_id"] = str(legacy_user_id(record["customer"]))
    migrated["id_types"] = {**record.get("id_types", {}), "customer_id": UserId.__name__}
    migrated["schema"] = SCHEMA_VERSION
    return migrated


def migrate_orders(records: Iterable[Record], dry_run: bool = False) -> tuple[list[Record], MigrationReport]:
    """Migrates every record it can; the others are kept unchanged and reported."""
    report = MigrationReport()
    result: list[Record] = []
    print(f"[migrate] {MIGRATION}{' (dry run)' if dry_run else ''}")
    for index, record in enumerate(records):
        if is_migrated(record):
            report.skipped += 1
            result.append(record)
            continue
        try:
            migrated = migrate_record(record)
        except (KeyError, ValueError) as exc:
            print(f"[migrate] record {index}: cannot migrate: {exc}")
            report.failed.append((index, str(exc)))
            result.append(record)
            continue
        report.migrated += 1
        result.append(record if dry_run else migrated)
    print(
        f"[migrate] {report.migrated} migrated, {report.skipped} already done, "
        f"{len(report.failed)} failed"
    )
    return result, report


def customer_ids(records: Iterable[Record]) -> set[UserId]:
    """The distinct account ids referenced by migrated records."""
    return {UserId.parse(record["customer_id"]) for record in records if is_migrated(record)}
