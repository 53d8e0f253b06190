"""``with_flag_names``: every bar's mask becomes its rule names, in bar order."""

from __future__ import annotations

import datetime as dt

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from marketdata.api.routes.bars import with_flag_names
from marketdata.validation import Flag, flag_names

_BITS = [int(f) for f in Flag]
_MASKS = st.lists(st.sampled_from(_BITS), max_size=4).map(lambda bits: sum(set(bits)))


def _frame(masks: list[int]) -> pl.DataFrame:
    start = dt.date(2024, 1, 1)
    return pl.DataFrame(
        {
            "date": [start + dt.timedelta(days=i) for i in range(len(masks))],
            "flags": masks,
        },
        schema={"date": pl.Date(), "flags": pl.Int64()},
    )


@given(st.lists(_MASKS, max_size=60))
def test_each_bar_gets_the_names_of_its_own_mask(masks: list[int]) -> None:
    named = with_flag_names(_frame(masks))
    assert named.schema["flags"] == pl.List(pl.String())
    assert named["flags"].to_list() == [flag_names(m) for m in masks]
    assert named["date"].to_list() == _frame(masks)["date"].to_list()


def test_unordered_masks_keep_bar_order() -> None:
    masks = [int(Flag.PRICE_JUMP), 0, int(Flag.ZERO_VOLUME | Flag.NON_FINITE_PRICE), 0]
    named = with_flag_names(_frame(masks))["flags"].to_list()
    assert named == [["price_jump"], [], ["non_finite_price", "zero_volume"], []]
