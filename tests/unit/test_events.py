"""keepalived's notify words (TYPE NAME STATE [PRIORITY]) and event ordering."""

from __future__ import annotations

import pytest

from haguard.core.events import STATES, TYPES, Event, OrderKey, is_superseded, parse_event
from haguard.errors import BadInput, UnknownState

CASINGS = {"upper": str.upper, "lower": str.lower, "title": str.title}


# --------------------------------------------------------------------------- parse_event


@pytest.mark.parametrize("casing", list(CASINGS), ids=list(CASINGS))
@pytest.mark.parametrize("state", STATES, ids=STATES)
def test_parse_event_accepts_every_state_case_insensitively(state: str, casing: str) -> None:
    event = parse_event("INSTANCE", "VI_1", CASINGS[casing](state), "150")
    assert event == Event(kind="INSTANCE", name="VI_1", state=state, priority=150)


@pytest.mark.parametrize("casing", list(CASINGS), ids=list(CASINGS))
@pytest.mark.parametrize("kind", TYPES, ids=TYPES)
def test_parse_event_accepts_every_type_case_insensitively(kind: str, casing: str) -> None:
    event = parse_event(CASINGS[casing](kind), "VG_1", "BACKUP")
    assert event.kind == kind


def test_parse_event_keeps_instance_name_verbatim() -> None:
    assert parse_event("instance", "vi_Web.1", "master").name == "vi_Web.1"


def test_parse_event_without_priority_has_none() -> None:
    assert parse_event("INSTANCE", "VI_1", "FAULT").priority is None


@pytest.mark.parametrize(("text", "value"), [("0", 0), ("1", 1), ("100", 100), ("255", 255)],
                         ids=["zero", "one", "hundred", "max-255"])
def test_parse_event_accepts_priority_in_range(text: str, value: int) -> None:
    assert parse_event("INSTANCE", "VI_1", "MASTER", text).priority == value


@pytest.mark.parametrize("state", ["INIT", "MASTERX", "BACK UP", "", "1"],
                         ids=["init", "suffix", "space", "empty", "digit"])
def test_parse_event_rejects_unknown_state_with_unknown_state_exit_2(state: str) -> None:
    with pytest.raises(UnknownState) as info:
        parse_event("INSTANCE", "VI_1", state, "100")
    assert info.value.exit_code == 2
    assert isinstance(info.value, BadInput)


@pytest.mark.parametrize("kind", ["VRRP", "INSTANCES", "", "SYNC_GROUP"],
                         ids=["vrrp", "plural", "empty", "sync_group"])
def test_parse_event_rejects_unknown_type_with_bad_input(kind: str) -> None:
    with pytest.raises(BadInput) as info:
        parse_event(kind, "VI_1", "MASTER", "100")
    assert not isinstance(info.value, UnknownState)
    assert info.value.exit_code == 2


@pytest.mark.parametrize("priority", ["abc", "", "1.5", "256", "1000", "-1", "0x10", "1e2"],
                         ids=["word", "empty", "fraction", "256", "1000", "negative", "hex",
                              "exponent"])
def test_parse_event_rejects_bad_priority_with_bad_input(priority: str) -> None:
    with pytest.raises(BadInput) as info:
        parse_event("INSTANCE", "VI_1", "MASTER", priority)
    assert not isinstance(info.value, UnknownState)
    assert info.value.exit_code == 2


# --------------------------------------------------------------------------- OrderKey


@pytest.mark.parametrize(
    ("earlier", "later"),
    [((100, 9999), (101, 1)), ((100, 500), (100, 501)), ((0, 0), (0, 1))],
    ids=["start-ticks-decide-over-pid", "pid-breaks-tie", "zero"])
def test_order_key_orders_by_start_ticks_then_pid(
        earlier: tuple[int, int], later: tuple[int, int]) -> None:
    a, b = OrderKey(*earlier), OrderKey(*later)
    assert a < b and b > a and a != b
    assert sorted([b, a]) == [a, b]


def test_order_key_equal_keys_are_equal_and_not_ordered() -> None:
    assert OrderKey(5, 6) == OrderKey(5, 6)
    assert not OrderKey(5, 6) < OrderKey(5, 6)


@pytest.mark.parametrize("key", [OrderKey(0, 1), OrderKey(123456789, 4242), OrderKey(2**40, 2**22)],
                         ids=["small", "typical", "large"])
def test_order_key_round_trips_through_list(key: OrderKey) -> None:
    assert key.as_list() == [key.start_ticks, key.pid]
    assert OrderKey.from_list(key.as_list()) == key


@pytest.mark.parametrize(
    "value",
    [None, [], [1], [1, 2, 3], (1, 2), ["1", 2], [1, "2"], [1.0, 2], [1, 2.5], [True, 2],
     [1, False], [1, None], {"start_ticks": 1, "pid": 2}, "1 2", 12],
    ids=["none", "empty", "one", "three", "tuple", "str-ticks", "str-pid", "float-ticks",
         "float-pid", "bool-ticks", "bool-pid", "none-pid", "dict", "string", "int"])
def test_order_key_from_list_rejects_bad_shapes(value: object) -> None:
    assert OrderKey.from_list(value) is None


# --------------------------------------------------------------------------- is_superseded

MINE = OrderKey(1000, 50)
OLDER = OrderKey(999, 70)
SAME = OrderKey(1000, 50)
NEWER = OrderKey(1000, 51)

_K = {"none": None, "older": OLDER, "same": SAME, "newer": NEWER}


@pytest.mark.parametrize(
    ("newest_seen", "last_applied", "superseded"),
    [
        ("none", "none", False),
        ("none", "older", False),
        ("none", "same", False),
        ("none", "newer", True),
        ("older", "none", False),
        ("older", "older", False),
        ("older", "same", False),
        ("older", "newer", True),
        ("same", "none", False),
        ("same", "older", False),
        ("same", "same", False),
        ("same", "newer", True),
        ("newer", "none", True),
        ("newer", "older", True),
        ("newer", "same", True),
        ("newer", "newer", True),
    ],
    ids=lambda v: v if isinstance(v, str) else ("superseded" if v else "kept"))
def test_is_superseded_only_by_a_later_forked_event(
        newest_seen: str, last_applied: str, superseded: bool) -> None:
    assert is_superseded(MINE, _K[newest_seen], _K[last_applied]) is superseded


def test_is_superseded_by_later_start_even_with_lower_pid() -> None:
    # pids wrap; start time decides first.
    assert is_superseded(OrderKey(1000, 30000), OrderKey(1001, 2), None) is True
