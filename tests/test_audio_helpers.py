"""The audio helpers as pure functions (no database, no Redis): mixes that never wrap
around and G.711 decoded by the book (moved out of test_ingest_audio.py)."""

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from recordings import audio
from tests.media import g711_encode, tone


# --- mixing ----------------------------------------------------------------------------


def test_loud_legs_clip_at_the_limits_instead_of_wrapping_around():
    loud = np.array([30000, -30000, 32767, -32768], np.int16)
    assert audio.mix(loud, loud).tolist() == [32767, -32768, 32767, -32768]


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 200).flatmap(
        lambda n: st.tuples(arrays(np.int16, n), arrays(np.int16, st.integers(1, 200)))
    )
)
def test_mixing_never_wraps_around(legs):
    left, right = legs
    mixed = audio.mix(left, right)
    n = max(len(left), len(right))
    exact = np.zeros(n, np.int64)
    exact[: len(left)] += left
    exact[: len(right)] += right
    assert mixed.dtype == np.int16
    assert mixed.tolist() == np.clip(exact, -32768, 32767).tolist()
    # The sign of the mix is the sign of the true sum: a wrap-around would flip it.
    assert np.all(np.sign(mixed.astype(np.int64)) == np.sign(exact))


# --- G.711 -----------------------------------------------------------------------------

def test_alaw_table_matches_known_values_of_the_standard():
    table = audio.alaw_decode_table()
    for code, value in {0xD5: 8, 0x55: -8, 0xD4: 24, 0xAA: 32256, 0x2A: -32256}.items():
        assert table[code] == value, hex(code)


def test_ulaw_table_matches_known_values_of_the_standard():
    table = audio.ulaw_decode_table()
    for code, value in {0xFF: 0, 0x7F: 0, 0xFE: 8, 0x7E: -8, 0x80: 32124, 0x00: -32124}.items():
        assert table[code] == value, hex(code)


def test_alaw_table_follows_the_segment_formula():
    # G.711 A-law: segment 0 reconstructs at 2m+1, segment s>0 at (2m+33)·2^(s-1), in
    # units of 1/4096 of full scale (8 in 16-bit), after inverting the even bits.
    table = audio.alaw_decode_table()
    for code in range(256):
        a = code ^ 0x55
        segment, mantissa = (a >> 4) & 7, a & 15
        magnitude = (2 * mantissa + 1) if segment == 0 else (2 * mantissa + 33) * 2 ** (segment - 1)
        assert table[code] == (8 * magnitude if a & 0x80 else -8 * magnitude)


def test_ulaw_table_follows_the_segment_formula():
    # G.711 µ-law: ((2m+33)·2^s - 33) in units of 1/8192 of full scale (4 in 16-bit),
    # after inverting all bits.
    table = audio.ulaw_decode_table()
    for code in range(256):
        u = ~code & 0xFF
        segment, mantissa = (u >> 4) & 7, u & 15
        magnitude = (2 * mantissa + 33) * 2**segment - 33
        assert table[code] == (-4 * magnitude if u & 0x80 else 4 * magnitude)


def test_ulaw_table_lies_on_the_continuous_mu_law_curve():
    # Independent of the segment arithmetic: each code's value sits on the µ=255 curve
    # within the piecewise-linear approximation's error (a few percent of the value).
    table = audio.ulaw_decode_table()
    for code in range(0x80, 0x100):
        index = 0xFF - code  # 0 (zero) .. 127 (full scale)
        y = (index + 0.5) / 128
        curve = 32767 / 255 * ((1 + 255) ** y - 1)
        assert abs(int(table[code]) - curve) <= 0.08 * curve + 16, hex(code)


@pytest.mark.parametrize("codec", ["alaw", "ulaw"])
def test_g711_codes_round_trip_through_the_reference_encoder(codec):
    table = audio.alaw_decode_table() if codec == "alaw" else audio.ulaw_decode_table()
    codes = np.arange(256, dtype=np.uint8)
    again = g711_encode(table[codes], codec)
    if codec == "ulaw":
        codes[0x7F] = 0xFF  # "negative zero" is encoded as positive zero
    assert again.tolist() == codes.tolist()


@pytest.mark.parametrize("codec", ["alaw", "ulaw"])
def test_g711_tables_match_the_python_reference(codec):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop", reason="audioop left the standard library in Python 3.13")
    decode = audioop.alaw2lin if codec == "alaw" else audioop.ulaw2lin
    reference = np.frombuffer(decode(bytes(range(256)), 2), dtype=np.int16)
    table = audio.alaw_decode_table() if codec == "alaw" else audio.ulaw_decode_table()
    assert table.tolist() == reference.tolist()


@pytest.mark.parametrize("codec", ["alaw", "ulaw"])
def test_g711_quantisation_error_stays_within_one_step(codec):
    table = audio.alaw_decode_table() if codec == "alaw" else audio.ulaw_decode_table()
    samples = tone(440, 0.5, amplitude=20000)
    decoded = table[g711_encode(samples, codec)].astype(np.int32)
    # The largest step of either law is 1024 (16-bit units); the error stays below it.
    assert np.max(np.abs(decoded - samples)) <= 1024
    assert 20 * math.log10(np.sqrt(np.mean(samples.astype(float) ** 2)) / np.sqrt(np.mean((decoded - samples) ** 2.0))) > 30
