import pytest

from shop.ids import UserId
from shop.migrations.legacy_ids import (
    customer_ids,
    is_migrated,
    legacy_user_id,
    migrate_orders,
)

LEGACY = [
    {"id": "ord_000000000001", "customer": 1234, "total": "12.50"},
    {"id": "ord_000000000002", "customer": 77, "total": "19.90"},
]

# Written by the first run of this migration (shop 0.3). Must be left alone.
ALREADY_MIGRATED = {
    "id": "ord_000000000003",
    "customer_id": "usr_000000000042",
    "id_types": {"customer_id": "UserId"},
    "schema": 2,
    "total": "5.00",
}


def test_legacy_numbers_map_to_padded_ids():
    assert legacy_user_id(1234) == UserId("usr_000000001234")
    for bad in (0, -1, True, "12", None):
        with pytest.raises(ValueError):
            legacy_user_id(bad)


def test_migrates_legacy_records():
    records, report = migrate_orders(LEGACY)
    assert report.migrated == 2 and report.ok
    assert records[0] == {
        "id": "ord_000000000001",
        "customer_id": "usr_000000001234",
        "id_types": {"customer_id": "UserId"},
        "schema": 2,
        "total": "12.50",
    }
    assert all(is_migrated(record) for record in records)


def test_is_idempotent_on_records_from_earlier_runs():
    records, report = migrate_orders([ALREADY_MIGRATED, *LEGACY])
    assert records[0] is ALREADY_MIGRATED
    assert (report.migrated, report.skipped, report.failed) == (2, 1, [])
    again, second = migrate_orders(records)
    assert again == records and second.skipped == 3


def test_dry_run_changes_nothing():
    records, report = migrate_orders(LEGACY, dry_run=True)
    assert records == LEGACY and report.migrated == 2


def test_broken_records_are_reported_and_kept():
    broken = {"id": "ord_000000000009", "customer": "n/a"}
    records, report = migrate_orders([broken])
    assert records == [broken]
    assert report.failed and report.failed[0][0] == 0


def test_customer_ids_collects_migrated_references():
    records, _ = migrate_orders([ALREADY_MIGRATED, *LEGACY])
    assert customer_ids(records) == {
        UserId("usr_000000000042"),
        UserId("usr_000000001234"),
        UserId("usr_000000000077"),
    }
