"""What the ingest makes of the PBX's audio: the right tones in the right files, exact
durations, MP3s as specified, G.711 decoded by the book, mixes that never wrap around."""

import io
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from recordings import audio, mp3, storage
from recordings.models import ContentType
from recordings.services import recording_ingest
from tests.audio_helpers import decode_mp3, dominant_frequency, level_at
from tests.factories import call_fields
from tests.media import g711_encode, mp3_bytes, tone, wav_bytes

pytestmark = pytest.mark.django_db


def ingest(**files):
    recording, created = recording_ingest(
        fields=call_fields(), **{name: io.BytesIO(data) for name, data in files.items()}
    )
    assert created
    return recording, {f.content_type: f for f in recording.files.all()}


def stored_path(stored):
    return storage.full_path(stored.path)


# --- tones end up where they belong ------------------------------------------------------


@pytest.fixture
def stereo_call():
    return ingest(stereo=wav_bytes([tone(440, 3.0), tone(1000, 3.0)]))


def test_left_leg_of_a_stereo_wav_carries_the_customer_tone(stereo_call):
    _, files = stereo_call
    samples, rate = decode_mp3(stored_path(files[ContentType.LEFT]))
    assert dominant_frequency(samples, rate) == pytest.approx(440, abs=5)
    assert level_at(samples, rate, 1000) < 0.05


def test_right_leg_of_a_stereo_wav_carries_the_operator_tone(stereo_call):
    _, files = stereo_call
    samples, rate = decode_mp3(stored_path(files[ContentType.RIGHT]))
    assert dominant_frequency(samples, rate) == pytest.approx(1000, abs=5)
    assert level_at(samples, rate, 440) < 0.05


def test_mix_of_a_stereo_wav_carries_both_tones(stereo_call):
    _, files = stereo_call
    samples, rate = decode_mp3(stored_path(files[ContentType.MONAURAL]))
    assert level_at(samples, rate, 440) > 0.5
    assert level_at(samples, rate, 1000) > 0.5


def test_every_produced_mp3_is_mono_32_kbps_cbr_at_the_input_rate(stereo_call):
    _, files = stereo_call
    for stored in files.values():
        info = mp3.inspect(stored_path(stored))
        assert (info.channels, info.sample_rate, set(info.bitrates)) == (1, 8000, {32})


def test_durations_are_exact_and_the_mp3s_info_tag_takes_off_the_encoder_delay_and_padding():
    recording, files = ingest(stereo=wav_bytes([tone(440, 2.5), tone(1000, 2.5)]))
    for stored in files.values():
        assert stored.duration == pytest.approx(2.5, abs=0.05)
        # The frames hold LAME's encoder delay and padding; the info tag says how much.
        info = mp3.inspect(stored_path(stored))
        assert info.delay == 576 and info.padding > 0
        assert info.duration == 2.5
    assert recording.duration == pytest.approx(2.5, abs=0.05)


def test_size_and_sha256_describe_the_stored_file(stereo_call):
    _, files = stereo_call
    for stored in files.values():
        assert storage.hash_file(stored_path(stored)) == (stored.size, stored.sha256)


def test_a_16_khz_call_gives_16_khz_mp3s():
    _, files = ingest(stereo=wav_bytes([tone(440, 2, 16000), tone(3000, 2, 16000)], rate=16000))
    for stored in files.values():
        assert mp3.inspect(stored_path(stored)).sample_rate == 16000
        assert stored.duration == pytest.approx(2.0, abs=0.05)
    samples, rate = decode_mp3(stored_path(files[ContentType.RIGHT]))
    assert dominant_frequency(samples, rate) == pytest.approx(3000, abs=10)


def test_the_bit_rate_follows_the_system_setting(set_system):
    set_system(mp3_bitrate_kbps=48)
    _, files = ingest(stereo=wav_bytes([tone(440, 1), tone(1000, 1)]))
    for stored in files.values():
        assert mp3.inspect(stored_path(stored)).bitrates == {48}


@pytest.mark.parametrize("codec", ["alaw", "ulaw"])
def test_g711_stereo_wav_is_decoded_to_the_right_tones(codec):
    _, files = ingest(stereo=wav_bytes([tone(440, 2), tone(1000, 2)], codec=codec))
    left, rate = decode_mp3(stored_path(files[ContentType.LEFT]))
    right, _ = decode_mp3(stored_path(files[ContentType.RIGHT]))
    assert dominant_frequency(left, rate) == pytest.approx(440, abs=5)
    assert dominant_frequency(right, rate) == pytest.approx(1000, abs=5)
    assert files[ContentType.LEFT].duration == pytest.approx(2.0, abs=0.05)


def test_mono_wav_legs_are_encoded_and_mixed():
    _, files = ingest(left=wav_bytes([tone(440, 2)]), right=wav_bytes([tone(1000, 2)]))
    assert set(files) == {ContentType.MONAURAL, ContentType.LEFT, ContentType.RIGHT}
    mixed, rate = decode_mp3(stored_path(files[ContentType.MONAURAL]))
    assert level_at(mixed, rate, 440) > 0.5 and level_at(mixed, rate, 1000) > 0.5


def test_legs_of_different_lengths_mix_to_the_longer_one():
    _, files = ingest(left=wav_bytes([tone(440, 2)]), right=wav_bytes([tone(1000, 3)]))
    assert files[ContentType.LEFT].duration == pytest.approx(2.0, abs=0.05)
    assert files[ContentType.RIGHT].duration == pytest.approx(3.0, abs=0.05)
    assert files[ContentType.MONAURAL].duration == pytest.approx(3.0, abs=0.05)


def test_a_given_mixed_wav_is_encoded_as_it_is():
    _, files = ingest(mixed=wav_bytes([tone(700, 1.5)]))
    assert set(files) == {ContentType.MONAURAL}
    samples, rate = decode_mp3(stored_path(files[ContentType.MONAURAL]))
    assert dominant_frequency(samples, rate) == pytest.approx(700, abs=5)
    assert files[ContentType.MONAURAL].duration == pytest.approx(1.5, abs=0.05)


def test_mp3_legs_are_stored_byte_for_byte():
    given = {"mixed": mp3_bytes(tone(440, 1)), "left": mp3_bytes(tone(440, 1)), "right": mp3_bytes(tone(1000, 1))}
    _, files = ingest(**given)
    assert stored_path(files[ContentType.LEFT]).read_bytes() == given["left"]
    assert stored_path(files[ContentType.RIGHT]).read_bytes() == given["right"]
    assert stored_path(files[ContentType.MONAURAL]).read_bytes() == given["mixed"]


def test_a_silent_leg_is_flagged_as_without_audio():
    _, files = ingest(stereo=wav_bytes([tone(440, 2), np.zeros(16000, np.int16)]))
    assert files[ContentType.LEFT].audio_detected is True
    assert files[ContentType.RIGHT].audio_detected is False
    assert files[ContentType.MONAURAL].audio_detected is True


def test_an_idle_g711_channel_counts_as_silence():
    idle = np.full(16000, 8, np.int16)  # A-law's idle code decodes to ±8
    _, files = ingest(stereo=wav_bytes([idle, idle], codec="alaw"))
    assert not any(f.audio_detected for f in files.values())


def test_nothing_is_left_in_the_incoming_folder_after_an_ingest(stereo_call):
    assert list((storage.root() / storage.INCOMING).iterdir()) == []


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
