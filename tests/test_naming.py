from datetime import datetime

import pytest

from biztel.numbers import normalize_number
from recordings.naming import day_folder, file_name


def test_separated_leg_name_matches_the_spec_example():
    name = file_name(
        started_at=datetime(2019, 7, 18, 16, 10, 58), caller="2006", callee="2002",
        key="1563433858.66", side="SRC", content_type="left",
    )
    assert name == "20190718161058-2006-2002-1563433858.66-SRC_l.mp3"


def test_numbers_lose_their_hyphens():
    name = file_name(
        started_at=datetime(2019, 7, 18, 14, 50, 0), caller="3800", callee="070-1234-5678",
        key="1563428995.29", side="DST", content_type="right",
    )
    assert name == "20190718145000-3800-07012345678-1563428995.29-DST_r.mp3"


def test_mixed_file_has_no_leg_suffix():
    name = file_name(
        started_at=datetime(2021, 6, 16, 20, 3, 33), caller="2006", callee="2002",
        key="21061600000268000060", side="SRC", content_type="monaural",
    )
    assert name == "20210616200333-2006-2002-21061600000268000060-SRC.mp3"


@pytest.mark.parametrize("value", ["+81-3-1234", "03 1234", "abc", ""])
def test_anything_but_digits_and_hyphens_is_not_a_number(value):
    with pytest.raises(ValueError):
        normalize_number(value)


def test_day_folder_groups_a_days_files():
    assert day_folder(datetime(2019, 7, 8, 1, 2, 3)) == "2019/07/08"
