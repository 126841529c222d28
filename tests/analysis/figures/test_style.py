"""The shared look: plain-number labels and one colour per antagonist name."""

from __future__ import annotations

import pytest

from analysis.figures import antagonist_colors, plain_number
from analysis.figures.style import PALETTE


@pytest.mark.parametrize(
    ("value", "label"),
    [
        (71520.4, "71,520"),
        (1234567.0, "1,234,567"),
        (812.34, "812"),
        (41.27, "41.3"),
        (0.1234, "0.12"),
        (-15000.0, "-15,000"),
        (None, ""),
        (float("nan"), ""),
    ],
)
def test_a_number_is_labelled_plainly_with_thousands_separators(value: float | None, label: str) -> None:
    assert plain_number(value) == label


def test_each_antagonist_name_gets_its_own_colour_in_rank_order_never_the_victims() -> None:
    colors = antagonist_colors(["tt", "furiosa", "tt"])
    assert colors == {"tt": PALETTE[2], "furiosa": PALETTE[3]}
    assert not {PALETTE[0], PALETTE[1]} & set(colors.values()), "the first two colours are the victim's"


def test_a_merged_antagonist_gives_each_member_a_colour_too() -> None:
    colors = antagonist_colors(["tt+furiosa", "hive1"])
    assert list(colors) == ["tt+furiosa", "tt", "furiosa", "hive1"]
    assert len(set(colors.values())) == 4
