"""The weekly digest's figures and message, from opportunities as Close lists them."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

from bot.close.models import Opportunity
from bot.digest.figures import Week, build
from bot.digest.message import digest_message
from sandbox import blockkit
from tests.blockkit_walk import DANGEROUS, mrkdwn_texts

LA = ZoneInfo("America/Los_Angeles")
TODAY = date(2026, 12, 7)  # a Monday
WEEK = Week.before(TODAY)


def opp(n: int, **fields: object) -> Opportunity:
    base: dict[str, object] = {
        "id": f"oppo_{n}",
        "lead_id": f"lead_{n}",
        "lead_name": f"Lead {n}",
        "value_currency": "USD",
        "status_type": "active",
        "status_label": "Proposal",
    }
    return Opportunity.model_validate({**base, **fields})


def test_the_week_is_the_monday_to_sunday_before_today() -> None:
    assert (WEEK.monday, WEEK.sunday) == (date(2026, 11, 30), date(2026, 12, 6))
    assert Week.before(date(2026, 12, 13)) == WEEK  # the Sunday after: still that week
    assert Week.before(date(2026, 12, 14)).monday == date(2026, 12, 7)
    assert WEEK.key == "2026-W49"
    assert Week.before(date(2027, 1, 4)).key == "2026-W53"  # ISO years have 52 or 53 weeks


def test_counts_and_values_of_last_week_are_annualized_and_in_the_digest_zone() -> None:
    created = [
        opp(1, value=100000, value_period="monthly", date_created="2026-11-30T09:00:00+00:00"),
        # 02:00 UTC on Monday 30 Nov is still Sunday 29 Nov in Los Angeles: the week before.
        opp(2, value=500000, value_period="one_time", date_created="2026-11-30T02:00:00+00:00"),
        opp(3, value=1200000, value_period="annual", date_created="2026-12-07T07:59:00+00:00"),
    ]
    won = [
        opp(4, status_type="won", value=300000, value_period="annual", date_won="2026-12-06"),
        opp(5, status_type="won", value=300000, value_period="annual", date_won="2026-12-07"),
    ]
    lost = [
        opp(6, status_type="lost", value=1000, date_lost="2026-12-01T18:00:00Z"),
        opp(7, status_type="lost", value=1000, date_lost="2026-11-29T18:00:00Z"),
    ]
    digest = build(WEEK, TODAY, LA, created=created, won=won, lost=lost, open_=[])
    # 1: $1,000/month → $12,000 a year; 3: Sunday 23:59 in Los Angeles, in the week.
    assert (digest.new.count, digest.new.value) == (2, 1200000 + 1200000)
    assert (digest.won.count, digest.won.value) == (1, 300000)
    assert (digest.lost.count, digest.lost.value) == (1, 1000)


def test_open_pipeline_by_status_largest_closing_and_overdue() -> None:
    open_ = [
        opp(1, value=1000000, confidence=50, date_won="2026-12-09", status_label="Demo"),
        opp(2, value=2000000, confidence=10, date_won="2026-12-01"),  # overdue
        opp(3, value=100000, value_period="monthly", confidence=80, date_won="2026-12-13"),
        opp(4, value=500000, confidence=None, date_won="2027-01-10"),
        opp(5, status_type="won", value=9000000, date_won="2026-12-08"),  # not open
    ]
    digest = build(WEEK, TODAY, LA, created=[], won=[], lost=[], open_=open_)
    assert [o.id for o in digest.closing] == ["oppo_1", "oppo_3"]  # Mon 7 – Sun 13 Dec
    assert digest.overdue == 1
    assert (digest.open_total.count, digest.open_total.value) == (
        4,
        1000000 + 2000000 + 1200000 + 500000,
    )
    assert digest.open_total.weighted == 500000 + 200000 + 960000
    assert [o.id for o in digest.largest] == ["oppo_3", "oppo_1", "oppo_2", "oppo_4"]
    by_status = {s.label: s.tally for s in digest.pipeline}
    assert by_status["Demo"].count == 1 and by_status["Proposal"].count == 3


def test_closes_own_annualized_figures_win_when_present() -> None:
    one = opp(
        1, value=100, value_period="monthly", annualized_value=1200, annualized_expected_value=600
    )
    digest = build(WEEK, TODAY, LA, created=[], won=[], lost=[], open_=[one])
    assert (digest.open_total.value, digest.open_total.weighted) == (1200, 600)


def test_the_message_links_each_deal_escapes_close_text_and_fits_block_kit() -> None:
    open_ = [
        opp(
            n,
            lead_name=f"<!channel> Lead {n}",
            value=100000 * n,
            confidence=50,
            date_won="2026-12-10",
        )
        for n in range(1, 15)
    ]
    digest = build(WEEK, TODAY, LA, created=[], won=[], lost=[], open_=open_)
    message = digest_message(digest, close_app_url="https://app.close.com/").model_dump()
    assert blockkit.problems(message, surface="message") == []
    texts = "\n".join(mrkdwn_texts(message))
    assert not any(d in texts for d in DANGEROUS)
    assert "<https://app.close.com/lead/lead_14/|" in texts
    assert "Expected to close this week* (14)" in texts and "…and 4 more" in texts
    assert "Open pipeline:* $105,000 in 14 deals, weighted $52,500" in texts  # the org's currency
    assert "Overdue:* none" in texts


def test_an_empty_week_reads_as_such() -> None:
    digest = build(WEEK, TODAY, LA, created=[], won=[], lost=[], open_=[])
    message = digest_message(digest, close_app_url="https://app.close.com/").model_dump()
    texts = "\n".join(mrkdwn_texts(message))
    assert "New: 0 deals" in texts and "no open deals" in texts and "nothing" in texts
