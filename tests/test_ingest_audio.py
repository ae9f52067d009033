"""What the ingest makes of the PBX's audio: the right tones in the right files, exact
durations, MP3s as specified, G.711 calls decoded (the pure audio helpers: test_audio_helpers.py)."""

import io

import numpy as np
import pytest

from recordings import mp3, storage
from recordings.models import ContentType
from recordings.services import recording_ingest
from tests.audio_helpers import decode_mp3, dominant_frequency, level_at
from tests.factories import call_fields
from tests.media import mp3_bytes, tone, wav_bytes

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
