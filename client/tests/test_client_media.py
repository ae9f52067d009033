"""pull with the media of SPEC.md §7 against the live server: the stereo file and the
lossless formats, each file verified and equal to what the server stores or sends."""

import wave

import pytest
import requests

from conftest import run_client
from tests.stack import ingest_stereo_call

pytestmark = [pytest.mark.timeout(300), pytest.mark.django_db]
MEDIA_DAY = "2021-09-16"  # a day of its own: the receive tests ingest on the 15th
CALL = {
    "request_id": "21091600000001000030",
    "unique_id": "1631800000.1",
    "started_at": f"{MEDIA_DAY} 11:00:00",
    "caller": "03-1234-5678",
    "callee": "050-111-0000",
    "side": "DST",
    "external_number": "0501110000",
    "extension": "2001",
    "tel": "03-1234-5678",
    "group": "sales",
}
SECONDS = 2.0
CONTENT_TYPES = ("monaural", "left", "right", "stereo")


def test_the_stereo_file_and_the_lossless_formats_are_pulled_verified(live, system, tmp_path):
    system(stereo_file="true", keep_lossless="true", burst_limit_per_second=100)
    call = ingest_stereo_call(live, live.pbx_token, CALL, seconds=SECONDS)
    names = {content_type: call["files"][content_type]["name"] for content_type in CONTENT_TYPES}
    folder = ("2021", "09", "16")

    result = run_client(live, "pull", "--date", MEDIA_DAY, "--out", str(tmp_path / "mp3"), "--quiet",
                        "--content-type", "stereo")
    assert result.returncode == 0, result.stderr
    pulled = tmp_path.joinpath("mp3", *folder, names["stereo"])
    assert pulled.read_bytes() == live.stored_file(names["stereo"]).read_bytes()

    result = run_client(live, "pull", "--date", MEDIA_DAY, "--out", str(tmp_path / "flac"), "--quiet",
                        "--content-type", ",".join(CONTENT_TYPES), "--format", "flac")
    assert result.returncode == 0, result.stderr
    for name in names.values():
        flac = name.removesuffix(".mp3") + ".flac"
        assert tmp_path.joinpath("flac", *folder, flac).read_bytes() == live.stored_file(flac).read_bytes()

    result = run_client(live, "pull", "--date", MEDIA_DAY, "--out", str(tmp_path / "wav"), "--quiet",
                        "--content-type", ",".join(CONTENT_TYPES), "--format", "wav")
    assert result.returncode == 0, result.stderr
    for content_type, name in names.items():
        path = tmp_path.joinpath("wav", *folder, name.removesuffix(".mp3") + ".wav")
        served = requests.get(
            f"{live.base_url}/public/api/v1/monitor/{CALL['request_id']}",
            params={"content_type": content_type, "format": "wav"},
            headers={"Authorization": f"Token {live.token}"}, verify=str(live.cert), timeout=30,
        )
        assert served.status_code == 200
        assert path.read_bytes() == served.content
        with wave.open(str(path)) as audio:
            assert audio.getnchannels() == (2 if content_type == "stereo" else 1)
            assert audio.getnframes() == SECONDS * audio.getframerate()
