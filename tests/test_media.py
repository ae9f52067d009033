"""Media for recognisers (SPEC.md §7): the exact timeline, the stereo file, lossless FLAC
and the WAV made from it, checked with decoders nobody here wrote (Debian's ffmpeg and
`lame --decode`) on what the download API answers."""

import csv
import io
import subprocess
import tempfile
import wave
import zipfile
from datetime import timedelta

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from freezegun import freeze_time

from recordings import mp3
from recordings.models import RecordingFile
from recordings.purge import purge_due
from recordings.services import recording_ingest
from tests.audio_helpers import dominant_frequency, level_at
from tests.conftest import ensure_debian_packages
from tests.factories import call_fields, stored_recording
from tests.media import tone, wav_bytes
from tests.test_download_errors import NOT_FOUND

pytestmark = pytest.mark.django_db

URL = "/public/api/v1/monitor/{}"
SECONDS = 3.0
# The customer starts speaking at 0.5 s, the operator at 1.25 s.
ONSETS = {"left": 0.5, "right": 1.25}
THRESHOLD = 2000
FORMAT_ERROR = {
    "name": "ValidateException",
    "type": "VALIDATE_ERROR",
    "exception_id": None,
    "message": "The format must be mp3, flac or wav.",
    "messages": {"format": ["The format must be mp3, flac or wav."]},
    "reason": "The format must be mp3, flac or wav.",
}


@pytest.fixture(autouse=True, scope="module")
def _decoders():
    ensure_debian_packages(("ffmpeg", "ffmpeg"), ("lame", "lame"))


def party(freq, onset, rate):
    """A tone that starts at `onset` seconds, silence before: the call's speech."""
    samples = np.zeros(int(SECONDS * rate), dtype=np.int16)
    start = int(onset * rate)
    samples[start:] = tone(freq, SECONDS - onset, rate)[: len(samples) - start]
    return samples


def call_channels(rate):
    return [party(440, ONSETS["left"], rate), party(1000, ONSETS["right"], rate)]


def ingest(set_system, *, rate=8000, codec="pcm16", stereo_file=True, keep_lossless=True, **fields):
    set_system(stereo_file=stereo_file, keep_lossless=keep_lossless)
    recording, created = recording_ingest(
        fields=call_fields(**fields), stereo=io.BytesIO(wav_bytes(call_channels(rate), rate, codec))
    )
    assert created
    return recording


def pbx_samples(rate, codec):
    """The PBX's samples as an independent decoder reads its WAV (ffmpeg: G.711 to linear)."""
    return ffmpeg_decode(wav_bytes(call_channels(rate), rate, codec), channels=2)


def get(client, token, recording, content_type="monaural", file_format=None, **headers):
    params = {"content_type": content_type}
    if file_format is not None:
        params["format"] = file_format
    return client.get(URL.format(recording.request_id), params, HTTP_AUTHORIZATION=f"Token {token}", **headers)


def body(response):
    return b"".join(response.streaming_content) if response.streaming else response.content


def ffmpeg_decode(data, channels):
    """int16 samples, shape (frames, channels), of an audio file as Debian's ffmpeg decodes it.

    From a file, as a recogniser downloads it: reading a pipe, ffmpeg cannot drop the padding
    at the end that the info tag announces."""
    with tempfile.NamedTemporaryFile() as f:
        f.write(data)
        f.flush()
        result = subprocess.run(
            ["ffmpeg", "-v", "error", "-i", f.name, "-f", "s16le", "-acodec", "pcm_s16le", "pipe:1"],
            capture_output=True, check=True,
        )
    return np.frombuffer(result.stdout, dtype="<i2").reshape(-1, channels)


def lame_decode(data, tmp_path):
    source, target = tmp_path / "in.mp3", tmp_path / "out.wav"
    source.write_bytes(data)
    subprocess.run(["lame", "--quiet", "--decode", str(source), str(target)], check=True)
    with wave.open(str(target)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, w.getnchannels()), w.getframerate()


def onset(samples):
    """Index of the first sample above the threshold."""
    return int(np.argmax(np.abs(samples.astype(np.int32)) > THRESHOLD))


# --- the exact timeline ----------------------------------------------------------------------


@pytest.mark.parametrize("codec", ["pcm16", "alaw", "ulaw"])
@pytest.mark.parametrize("rate", [8000, 16000])
def test_ffmpeg_decodes_every_mp3_to_the_calls_exact_duration_with_the_speech_where_it_was(
    client, token, set_system, rate, codec
):
    recording = ingest(set_system, rate=rate, codec=codec)
    expected_onsets = {
        "left": [ONSETS["left"]],
        "right": [ONSETS["right"]],
        "monaural": [ONSETS["left"]],
        "stereo": [ONSETS["left"], ONSETS["right"]],
    }
    for content_type, onsets in expected_onsets.items():
        decoded = ffmpeg_decode(body(get(client, token, recording, content_type)), channels=len(onsets))
        assert abs(len(decoded) - SECONDS * rate) <= rate / 1000, content_type
        for channel, seconds in enumerate(onsets):
            assert abs(onset(decoded[:, channel]) - seconds * rate) <= rate / 1000, (content_type, channel)
    assert recording.files.get(content_type="left").duration == SECONDS


@pytest.mark.parametrize("rate", [8000, 16000])
def test_lame_decode_gives_back_the_calls_exact_duration_with_the_speech_where_it_was(
    client, token, set_system, tmp_path, rate
):
    recording = ingest(set_system, rate=rate, codec="alaw")
    for content_type, channels in (("right", 1), ("stereo", 2)):
        decoded, decoded_rate = lame_decode(body(get(client, token, recording, content_type)), tmp_path)
        assert decoded_rate == rate
        assert decoded.shape == (SECONDS * rate, channels)
        assert abs(onset(decoded[:, -1]) - ONSETS["right"] * rate) <= rate / 1000


def test_the_info_tag_says_what_the_lame_commands_own_says_for_the_same_call(client, token, set_system, tmp_path):
    recording = ingest(set_system, stereo_file=False, keep_lossless=False)
    ours = tmp_path / "ours.mp3"
    ours.write_bytes(body(get(client, token, recording, "left")))
    leg = tmp_path / "left.wav"
    leg.write_bytes(wav_bytes([call_channels(8000)[0]]))
    theirs = tmp_path / "theirs.mp3"
    subprocess.run(["lame", "--quiet", "--noreplaygain", "-b", "32", "--cbr", "-m", "m", str(leg), str(theirs)], check=True)
    a, b = mp3.inspect(ours), mp3.inspect(theirs)
    assert (a.delay, a.padding, a.frames, a.duration) == (b.delay, b.padding, b.frames, b.duration)
    assert ours.stat().st_size == theirs.stat().st_size
    assert ours.read_bytes()[:4] == theirs.read_bytes()[:4]
    assert ours.read_bytes()[13:21] == theirs.read_bytes()[13:21] == b"Info\x00\x00\x00\x0f"


# --- the stereo file ----------------------------------------------------------------------------


def test_the_stereo_file_has_the_customer_on_channel_0_and_the_operator_on_channel_1(client, token, set_system):
    recording = ingest(set_system, keep_lossless=False)
    response = get(client, token, recording, "stereo")
    assert response.status_code == 200
    data = body(response)
    decoded = ffmpeg_decode(data, channels=2)
    for channel, (freq, other) in enumerate(((440, 1000), (1000, 440))):
        samples = decoded[int(1.5 * 8000) :, channel]
        assert dominant_frequency(samples, 8000) == pytest.approx(freq, abs=5)
        assert level_at(samples, 8000, other) < 0.05


def test_the_stereo_file_is_lr_stereo_at_twice_the_bit_rate_named_lr(client, token, set_system, tmp_path):
    set_system(mp3_bitrate_kbps=24)
    recording = ingest(set_system, keep_lossless=False)
    response = get(client, token, recording, "stereo")
    stored = recording.files.get(content_type="stereo")
    assert stored.name.endswith("-SRC_lr.mp3")
    assert response["Content-Disposition"] == f'attachment; filename="{stored.name}"'
    path = tmp_path / "stereo.mp3"
    path.write_bytes(body(response))
    info = mp3.inspect(path)
    assert (info.channels, info.sample_rate, set(info.bitrates)) == (2, 8000, {48})
    # every frame's mode bits: 00 is L/R stereo, 01 would be joint (mid/side)
    data, pos, modes = path.read_bytes(), 0, set()
    while pos < len(data):
        header = mp3.parse_header(data[pos : pos + 4])
        modes.add(data[pos + 3] >> 6)
        pos += header.length
    assert modes == {0b00}


def test_there_is_no_stereo_file_while_the_setting_is_off(client, token, set_system):
    recording = ingest(set_system, stereo_file=False)
    response = get(client, token, recording, "stereo")
    assert (response.status_code, response.json()) == (404, NOT_FOUND)
    assert sorted(recording.files.values_list("content_type", flat=True)) == ["left", "monaural", "right"]


def test_the_stereo_file_needs_the_voice_file_separation_licence(client, token, set_system):
    recording = ingest(set_system)
    set_system(voice_file_separation=False)
    response = get(client, token, recording, "stereo")
    assert response.status_code == 403
    assert response.json()["name"] == "AuthorizationException"


def test_a_call_that_is_not_a_separation_target_gets_no_stereo_file(set_system):
    set_system(separation_targets="0399999999")
    recording = ingest(set_system)
    assert list(recording.files.values_list("content_type", flat=True)) == ["monaural"]


def test_mp3_legs_handed_over_as_they_are_get_no_stereo_file_and_no_lossless_copy(client, token, set_system):
    set_system(stereo_file=True, keep_lossless=True)
    recording = stored_recording()
    assert get(client, token, recording, "stereo").json() == NOT_FOUND
    assert get(client, token, recording, "left", "flac").json() == NOT_FOUND
    assert get(client, token, recording, "left", "wav").json() == NOT_FOUND


def test_the_stereo_file_goes_with_the_legs_after_seven_days_and_takes_its_flac_along(client, token, set_system):
    with freeze_time("2019-07-18 16:30:00+09:00") as clock:
        recording = ingest(set_system)
        flac = get(client, token, recording, "stereo", "flac")
        assert flac.status_code == 200
        clock.tick(timedelta(days=7, seconds=1))
        outcome = purge_due()
        assert outcome.files == 3
        for file_format in ("mp3", "flac", "wav"):
            assert get(client, token, recording, "stereo", file_format).json() == NOT_FOUND
        assert get(client, token, recording, "monaural", "flac").status_code == 200


def test_the_purge_deletes_the_flac_copy_from_storage_with_its_mp3(set_system, capsys):
    with freeze_time("2019-07-18 16:30:00+09:00") as clock:
        recording = ingest(set_system)
        left = recording.files.get(content_type="left")
        clock.tick(timedelta(days=8))
        call_command("purge_recordings")
    printed = capsys.readouterr().out
    assert left.path in printed and left.lossless_path in printed
    assert left.lossless_path.endswith("-SRC_l.flac")


# --- FLAC and WAV ----------------------------------------------------------------------------


@pytest.mark.parametrize("codec", ["pcm16", "alaw", "ulaw"])
@pytest.mark.parametrize("rate", [8000, 16000])
def test_flac_gives_back_exactly_the_pbxs_samples(client, token, set_system, rate, codec):
    recording = ingest(set_system, rate=rate, codec=codec)
    pbx = pbx_samples(rate, codec)
    expected = {"left": pbx[:, :1], "right": pbx[:, 1:], "stereo": pbx}
    for content_type, samples in expected.items():
        response = get(client, token, recording, content_type, "flac")
        assert response.status_code == 200
        assert response["Content-Type"] == "audio/flac"
        assert ffmpeg_decode(body(response), channels=samples.shape[1]).tolist() == samples.tolist()
    mixed = ffmpeg_decode(body(get(client, token, recording, "monaural", "flac")), channels=1)
    assert mixed[:, 0].tolist() == np.clip(pbx.astype(np.int32).sum(axis=1), -32768, 32767).tolist()


@pytest.mark.parametrize("codec", ["pcm16", "ulaw"])
def test_wav_gives_back_exactly_the_pbxs_samples_with_an_exact_length(client, token, set_system, codec):
    recording = ingest(set_system, rate=16000, codec=codec)
    pbx = pbx_samples(16000, codec)
    for content_type, samples in (("stereo", pbx), ("right", pbx[:, 1:])):
        response = get(client, token, recording, content_type, "wav")
        assert response.status_code == 200
        data = body(response)
        assert response["Content-Length"] == str(len(data)) == str(44 + samples.size * 2)
        assert response["Content-Type"] == "audio/wav"
        name = recording.files.get(content_type=content_type).name.removesuffix(".mp3") + ".wav"
        assert response["Content-Disposition"] == f'attachment; filename="{name}"'
        with wave.open(io.BytesIO(data)) as w:
            assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (samples.shape[1], 16000, 2)
            assert np.frombuffer(w.readframes(w.getnframes()), "<i2").tolist() == samples.reshape(-1).tolist()
        assert ffmpeg_decode(data, channels=samples.shape[1]).tolist() == samples.tolist()


@pytest.mark.parametrize(
    "byte_range", ["bytes=0-0", "bytes=0-43", "bytes=10-100", "bytes=43-44", "bytes=45-46", "bytes=1001-70001",
                   "bytes=-1", "bytes=-999", "bytes=50000-"]
)
def test_a_wav_range_is_the_slice_of_the_whole_wav(client, token, set_system, byte_range):
    recording = ingest(set_system)
    whole = body(get(client, token, recording, "stereo", "wav"))
    response = get(client, token, recording, "stereo", "wav", HTTP_RANGE=byte_range)
    assert response.status_code == 206
    first, last = byte_range.removeprefix("bytes=").split("-")
    start = len(whole) - int(last) if not first else int(first)
    end = len(whole) - 1 if not first or not last else int(last)
    part = body(response)
    assert part == whole[start : end + 1]
    assert response["Content-Range"] == f"bytes {start}-{end}/{len(whole)}"
    assert response["Content-Length"] == str(len(part))


def test_a_wav_range_beyond_its_end_is_416(client, token, set_system):
    recording = ingest(set_system)
    size = len(body(get(client, token, recording, "left", "wav")))
    response = get(client, token, recording, "left", "wav", HTTP_RANGE=f"bytes={size}-")
    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{size}"


@pytest.mark.parametrize("file_format", ["flac", "wav"])
def test_each_format_has_its_own_strong_etag_and_answers_304_to_it(client, token, set_system, file_format):
    recording = ingest(set_system)
    etags = {f: get(client, token, recording, "left", f)["ETag"] for f in ("mp3", "flac", "wav")}
    assert len(set(etags.values())) == 3
    assert not etags[file_format].startswith("W/")
    stored = recording.files.get(content_type="left")
    if file_format == "flac":
        assert etags["flac"] == f'"{stored.lossless_sha256}"'
    response = get(client, token, recording, "left", file_format, HTTP_IF_NONE_MATCH=etags[file_format])
    assert response.status_code == 304
    assert body(response) == b""
    assert get(client, token, recording, "left", file_format, HTTP_IF_NONE_MATCH=etags["mp3"]).status_code == 200


@pytest.mark.parametrize("file_format", ["flac", "wav"])
def test_head_of_a_lossless_format_answers_its_headers_without_a_body(client, token, set_system, file_format):
    recording = ingest(set_system)
    whole = get(client, token, recording, "monaural", file_format)
    data = body(whole)
    response = client.head(
        URL.format(recording.request_id), {"content_type": "monaural", "format": file_format},
        HTTP_AUTHORIZATION=f"Token {token}",
    )
    assert response.status_code == 200
    assert response.content == b""
    assert response["Content-Length"] == str(len(data))
    assert response["ETag"] == whole["ETag"]
    assert response["Accept-Ranges"] == "bytes"


def test_the_listing_shows_the_stereo_file_and_each_files_lossless_copy(client, token, set_system):
    with_copies = ingest(set_system, started_at="2019-07-18 10:00:00")
    without = ingest(set_system, stereo_file=False, keep_lossless=False, started_at="2019-07-18 11:00:00")
    response = client.get("/public/api/v1/monitor/", {"date": "2019-07-18"}, HTTP_AUTHORIZATION=f"Token {token}")
    first, second = response.json()["results"]
    assert set(first["files"]) == {"monaural", "left", "right", "stereo"}
    for content_type, entry in first["files"].items():
        stored = with_copies.files.get(content_type=content_type)
        assert entry["lossless"] == {"bytes": stored.lossless_size, "sha256": stored.lossless_sha256}
        flac = body(get(client, token, with_copies, content_type, "flac"))
        assert len(flac) == stored.lossless_size
    assert first["files"]["stereo"]["name"] == with_copies.files.get(content_type="stereo").name
    assert second["files"]["stereo"] is None
    assert second["files"]["left"]["lossless"] is None
    assert without.files.count() == 3


# --- the format parameter's errors ---------------------------------------------------------------


@pytest.mark.parametrize("file_format", ["", "MP3", "ogg", "wav ", "flac,wav", "json", "api"])
def test_every_other_format_is_the_exact_400(client, token, set_system, file_format):
    recording = ingest(set_system, stereo_file=False, keep_lossless=False)
    response = get(client, token, recording, "left", file_format)
    assert response.status_code == 400
    assert response.json() == FORMAT_ERROR


def test_format_is_checked_right_after_content_type(client, token, set_system):
    recording = ingest(set_system, stereo_file=False, keep_lossless=False)
    bad_content_type = get(client, token, recording, "mono", "ogg")
    assert bad_content_type.json()["messages"] == {"content_type": ["選択されたmonitor log monitor typeは正しくありません"]}
    set_system(voice_file_separation=False)
    assert get(client, token, recording, "left", "ogg").json() == FORMAT_ERROR  # before the licence's 403
    assert client.get(URL.format("00000000000000000000"), {"format": "ogg"}, HTTP_AUTHORIZATION=f"Token {token}").json() == FORMAT_ERROR


def test_a_format_that_drf_would_have_taken_for_its_own_is_ours(client, token, set_system):
    recording = ingest(set_system, stereo_file=False, keep_lossless=False)
    # DRF used to read ?format= as its renderer choice: this was a 500.
    response = get(client, token, recording, "left", "wav")
    assert (response.status_code, response.json()) == (404, NOT_FOUND)


@pytest.mark.parametrize("file_format", ["flac", "wav"])
def test_a_call_stored_without_lossless_copies_answers_the_404_row(client, token, set_system, file_format):
    recording = ingest(set_system, keep_lossless=False)
    for content_type in ("monaural", "left", "right", "stereo"):
        response = get(client, token, recording, content_type, file_format)
        assert (response.status_code, response.json()) == (404, NOT_FOUND)
    assert get(client, token, recording, "stereo", "mp3").status_code == 200


# --- behind nginx, the archive, the export, the settings -------------------------------------------


def test_behind_nginx_flac_is_an_internal_redirect_and_wav_is_streamed_by_django(client, token, set_system, settings):
    recording = ingest(set_system)
    settings.DOWNLOAD_ACCEL_REDIRECT_PREFIX = "/protected/"
    stored = recording.files.get(content_type="left")
    flac = get(client, token, recording, "left", "flac")
    assert flac["X-Accel-Redirect"] == f"/protected/{stored.lossless_path}"
    assert flac["Content-Length"] == str(stored.lossless_size)
    wav = get(client, token, recording, "left", "wav")
    assert "X-Accel-Redirect" not in wav
    assert len(body(wav)) == int(wav["Content-Length"]) == 44 + int(SECONDS * 8000) * 2


def test_the_day_archive_and_the_export_carry_the_stereo_file_but_no_lossless_copy(client, token, set_system, tmp_path):
    set_system(bulk_download=True)
    recording = ingest(set_system, started_at="2019-07-18 10:00:00")
    names = {f.content_type: f.name for f in recording.files.all()}
    response = client.get("/public/api/v1/monitor/archive/2019-07-18", HTTP_AUTHORIZATION=f"Token {token}")
    with zipfile.ZipFile(io.BytesIO(body(response))) as archive:
        assert sorted(archive.namelist()) == sorted([*names.values(), "manifest.csv"])
        rows = list(csv.DictReader(io.TextIOWrapper(archive.open("manifest.csv"), encoding="utf-8")))
    assert {row["content_type"]: row["filename"] for row in rows} == names
    call_command("export_recordings", "--date", "2019-07-18", "--out", str(tmp_path / "out"))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted([*names.values(), "manifest.csv"])
    stereo = recording.files.get(content_type="stereo")
    assert (tmp_path / "out" / stereo.name).read_bytes() == body(get(client, token, recording, "stereo"))


def test_the_settings_command_switches_the_stereo_file_and_the_lossless_copies(capsys):
    call_command("biztel_settings", "--set", "stereo_file=true", "--set", "keep_lossless=true")
    printed = capsys.readouterr().out.splitlines()
    assert "stereo_file=true" in printed and "keep_lossless=true" in printed
    with pytest.raises(CommandError):
        call_command("biztel_settings", "--set", "stereo_file=yes")
    recording, _ = recording_ingest(fields=call_fields(), stereo=io.BytesIO(wav_bytes(call_channels(8000))))
    assert RecordingFile.objects.filter(recording=recording, lossless_sha256__isnull=False).count() == 4


def test_the_defaults_store_neither_a_stereo_file_nor_lossless_copies(capsys):
    call_command("biztel_settings")
    printed = capsys.readouterr().out.splitlines()
    assert "stereo_file=false" in printed and "keep_lossless=false" in printed
    recording, _ = recording_ingest(fields=call_fields(), stereo=io.BytesIO(wav_bytes(call_channels(8000))))
    assert sorted(f.content_type for f in recording.files.all()) == ["left", "monaural", "right"]
    assert not recording.files.filter(lossless_sha256__isnull=False).exists()


def test_the_recording_admin_shows_the_stereo_file_and_the_lossless_copies(admin_client, set_system):
    recording = ingest(set_system)
    stereo = recording.files.get(content_type="stereo")
    page = admin_client.get(f"/admin/recordings/recording/{recording.pk}/change/").content.decode()
    assert stereo.name in page
    assert "Lossless copy (FLAC)" in page
    assert f"{stereo.lossless_size} bytes, SHA-256 {stereo.lossless_sha256}" in page


def test_the_settings_page_offers_the_stereo_file_and_the_lossless_copies(admin_client):
    page = admin_client.get("/admin/biztel/systemsettings/", follow=True).content.decode()
    assert 'name="stereo_file"' in page and 'name="keep_lossless"' in page


def test_the_openapi_schema_documents_the_format_and_the_stereo_content_type(client):
    response = client.get("/public/api/schema/", {"format": "json"})
    assert response["Content-Type"].startswith("application/vnd.oai.openapi+json")
    operation = response.json()["paths"]["/public/api/v1/monitor/{recording_id}"]["get"]
    parameters = {p["name"]: p["schema"] for p in operation["parameters"]}
    assert sorted(parameters["format"]["enum"]) == ["flac", "mp3", "wav"]
    assert parameters["format"]["default"] == "mp3"
    assert "stereo" in parameters["content_type"]["enum"]
    assert {"audio/mpeg", "audio/flac", "audio/wav"} <= set(operation["responses"]["200"]["content"])
    assert client.get("/public/api/schema/").content.startswith(b"openapi:")  # YAML without ?format


def test_wav_legs_of_different_lengths_make_a_stereo_file_as_long_as_the_longer(client, token, set_system):
    set_system(stereo_file=True, keep_lossless=True)
    customer, operator = tone(440, 2.0), tone(1000, 3.0)
    recording, _ = recording_ingest(
        fields=call_fields(), left=io.BytesIO(wav_bytes([customer])), right=io.BytesIO(wav_bytes([operator]))
    )
    decoded = ffmpeg_decode(body(get(client, token, recording, "stereo")), channels=2)
    assert len(decoded) == 3 * 8000
    lossless = ffmpeg_decode(body(get(client, token, recording, "stereo", "flac")), channels=2)
    assert lossless[:, 0].tolist() == customer.tolist() + [0] * 8000
    assert lossless[:, 1].tolist() == operator.tolist()
    assert recording.files.get(content_type="left").duration == 2.0
