"""Cron expressions in a time zone (flowmake/load/cron.py): fire times, DST, bad input."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowmake.load.cron import CronError, days_are_either, field_values, parse_cron

BERLIN = ZoneInfo("Europe/Berlin")


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)


def test_a_nightly_slot_in_the_hour_spring_skips_runs_right_after_it() -> None:
    cron = parse_cron("30 2 * * *", "Europe/Berlin")
    fires = cron.next_fires(local(2026, 3, 28, 12, 0), 3)
    # 02:30 does not exist on 29 March 2026 in Berlin: as Debian cron, the first minute after the gap.
    assert [f.isoformat() for f in fires] == [
        "2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00", "2026-03-31T02:30:00+02:00"]


def test_a_nightly_slot_in_the_hour_autumn_repeats_runs_once() -> None:
    cron = parse_cron("30 2 * * *", "Europe/Berlin")
    fires = cron.next_fires(local(2026, 10, 24, 12, 0), 3)
    assert [f.isoformat() for f in fires] == [
        "2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00", "2026-10-27T02:30:00+01:00"]


def test_an_hourly_schedule_fires_in_both_copies_of_the_repeated_hour() -> None:
    cron = parse_cron("0 * * * *", "Europe/Berlin")
    fires = cron.next_fires(local(2026, 10, 25, 0, 30), 4)
    assert [f.astimezone(timezone.utc).strftime("%H:%M") for f in fires] == ["23:00", "00:00", "01:00", "02:00"]


def test_a_fixed_time_keeps_its_wall_clock_time_across_the_change() -> None:
    cron = parse_cron("0 5 * * *", "Europe/Berlin")
    fires = cron.next_fires(local(2026, 3, 27, 12, 0), 3)
    assert [f.strftime("%d %H:%M") for f in fires] == ["28 05:00", "29 05:00", "30 05:00"]
    assert [f.utcoffset() for f in fires] == [timedelta(hours=1), timedelta(hours=2), timedelta(hours=2)]


def test_fire_times_are_strictly_after_the_moment_given() -> None:
    cron = parse_cron("0 5 * * *")
    at_slot = datetime(2026, 1, 1, 5, 0, tzinfo=timezone.utc)
    assert cron.next_fires(at_slot, 1)[0] == at_slot + timedelta(days=1)
    assert cron.last_fire(at_slot) == at_slot
    assert cron.last_fire(at_slot - timedelta(seconds=1)) == at_slot - timedelta(days=1)


@pytest.mark.parametrize("alias, expr", [("@daily", "0 0 * * *"), ("@hourly", "0 * * * *"), ("@weekly", "0 0 * * 0")])
def test_shorthands_expand_to_five_fields(alias: str, expr: str) -> None:
    assert parse_cron(alias).expr == expr


@pytest.mark.parametrize("expr, words", [
    ("61 * * * *", "bad minute field `61`"),
    ("* 24 * * *", "bad hour field `24`"),
    ("* * * 13 *", "bad month field `13`"),
    ("* * * * 8", "bad day of week field `8`"),
    ("* * * *", "has 4 fields, not 5"),
    ("0 * * * * *", "(a seconds field is not supported)"),
    ("0 0 30 2 *", "never fires"),
    ("@fortnightly", "unknown cron shorthand"),
])
def test_bad_expressions_name_the_field_and_hint_the_form(expr: str, words: str) -> None:
    with pytest.raises(CronError) as caught:
        parse_cron(expr)
    assert words in caught.value.message
    assert caught.value.hint


def test_an_unknown_time_zone_suggests_the_close_one() -> None:
    with pytest.raises(CronError) as caught:
        parse_cron("0 5 * * *", "Europe/Berln")
    assert caught.value.message == "unknown time zone `Europe/Berln`"
    assert "Europe/Berlin" in caught.value.hint


def test_field_values_for_export() -> None:
    assert field_values(parse_cron("*/20 5 * * mon-fri")) == ([0, 20, 40], [5], None, None, [1, 2, 3, 4, 5])
    assert field_values(parse_cron("0 0 * * 7")) == ([0], [0], None, None, [0])  # 7 is Sunday, as 0
    assert days_are_either(parse_cron("0 0 1 * 1")) and not days_are_either(parse_cron("0 0 * * 1"))
    with pytest.raises(CronError):
        field_values(parse_cron("0 0 L * *"))


def _field(low: int, high: int):  # type: ignore[no-untyped-def]
    value = st.integers(low, high)
    return st.one_of(
        st.just("*"), value.map(str),
        st.tuples(value, value).map(lambda p: f"{min(p)}-{max(p)}"),
        st.lists(value, min_size=1, max_size=3, unique=True).map(lambda v: ",".join(map(str, v))),
        st.integers(1, 20).map(lambda s: f"*/{s}"),
    )


ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]


@given(minute=_field(0, 59), hour=_field(0, 23), dom=_field(1, 28), month=_field(1, 12), dow=_field(0, 6),
       zone=st.sampled_from(ZONES),
       start=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(timezone.utc)))
def test_every_expression_fires_in_order_after_its_start_and_never_twice_at_once(
        minute: str, hour: str, dom: str, month: str, dow: str, zone: str, start: datetime) -> None:
    cron = parse_cron(f"{minute} {hour} {dom} {month} {dow}", zone)
    fires = cron.next_fires(start, 6)
    assert fires, "a valid expression fires"
    instants = [f.timestamp() for f in fires]
    assert instants == sorted(set(instants)), "strictly increasing instants"
    assert all(f > start for f in fires)
    minutes, hours, doms, months, dows = field_values(cron)
    for f in fires:
        wall = f.astimezone(ZoneInfo(zone) if zone != "UTC" else timezone.utc)
        assert months is None or wall.month in months
        # A time pushed past a DST gap keeps its day; its minute and hour may move (by cron's rule).
        if wall.utcoffset() == (wall - timedelta(hours=3)).utcoffset():
            assert minutes is None or wall.minute in minutes
            assert hours is None or wall.hour in hours
    # The latest fire at or before each fire time is that fire time.
    assert all(cron.last_fire(f) == f for f in fires[:2])
