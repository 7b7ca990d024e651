import pytest

from shop.ids import InvoiceId, OrderId, UserId


def test_new_ids_carry_their_prefix():
    assert str(UserId.new()).startswith("usr_")
    assert str(OrderId.new()).startswith("ord_")
    assert str(InvoiceId.new()).startswith("inv_")


def test_new_ids_are_unique():
    assert len({UserId.new() for _ in range(200)}) == 200


def test_parse_round_trips_and_normalises():
    user_id = UserId.new()
    assert UserId.parse(str(user_id)) == user_id
    assert UserId.parse("  USR_000000001234 ") == UserId("usr_000000001234")
    assert UserId.parse(user_id) is user_id


@pytest.mark.parametrize("raw", ["", "usr_", "ord_000000001234", "usr_00000000!234", None, 42])
def test_parse_rejects_garbage(raw):
    with pytest.raises(ValueError, match="invalid"):
        UserId.parse(raw)


def test_ids_of_different_kinds_never_compare_equal():
    assert UserId("usr_000000000001") != OrderId("ord_000000000001")
    assert UserId("usr_000000000001") == UserId("usr_000000000001")


def test_ids_are_hashable_and_sortable():
    a, b = UserId("usr_000000000001"), UserId("usr_000000000002")
    assert sorted([b, a]) == [a, b]
    assert {a: "x"}[UserId("usr_000000000001")] == "x"


def test_ids_are_immutable():
    user_id = UserId.new()
    with pytest.raises(AttributeError):
        user_id.value = "usr_000000000001"


def test_repr_names_the_type():
    assert repr(UserId("usr_000000001234")) == "UserId('usr_000000001234')"
