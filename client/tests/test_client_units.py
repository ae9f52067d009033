"""The client's pure parts: listing pages, what to fetch, resume planning, the archive's
checks, the receiver's parsing and --exec. No server needed."""

import csv
import hashlib
import io
import zipfile
from datetime import date
from pathlib import Path

import pytest

from biztel_client.api import Client, ClientError
from biztel_client.archive import ArchiveRefused, unpack
from biztel_client.cli import main
from biztel_client.pull import Planned, disposition_name, folder_of_name, listing, planned_files
from biztel_client.receive import SeenIds, exec_command, notification_id
from biztel_client.transfer import content_range, resume_offset, sha256_of_etag

SHA = "a" * 64


def entry(name, exists=True, lossless=None):
    return {"name": name, "bytes": 10, "sha256": SHA, "duration": 1.0, "exists": exists, "lossless": lossless}


def recording(request_id, **files):
    return {"request_id": request_id, "files": {"monaural": None, "left": None, "right": None, **files}}


def test_the_listing_follows_next_until_it_is_null():
    pages = {
        "p1": {"results": [1, 2], "next": "p2"},
        "p2": {"results": [3], "next": "p3"},
        "p3": {"results": [], "next": None},
    }
    fetched = []

    def fetch(url):
        fetched.append(url)
        return pages[url]

    assert list(listing(fetch, "p1")) == [1, 2, 3]
    assert fetched == ["p1", "p2", "p3"]


def test_a_listing_that_repeats_a_page_is_refused():
    with pytest.raises(ClientError, match="same page twice"):
        list(listing(lambda url: {"results": [1], "next": "p1"}, "p1"))


def test_the_next_url_is_followed_on_the_server_given_not_the_host_it_names():
    client = Client(server="https://recordings.example.com:8000/", token="t")
    next_url = "http://127.0.0.1:8001/public/api/v1/monitor/?date=2021-09-13&page_size=1000&cursor=abc"
    assert client.url(next_url) == "https://recordings.example.com:8000/public/api/v1/monitor/?date=2021-09-13&page_size=1000&cursor=abc"


def test_only_files_that_exist_are_planned_in_the_asked_content_types():
    recordings = [
        recording("1", monaural=entry("a.mp3"), left=entry("a_l.mp3", exists=False), right=entry("a_r.mp3")),
        recording("2", monaural=entry("b.mp3")),
    ]
    planned = list(planned_files(recordings, content_types=("monaural", "left", "right", "stereo")))
    assert planned == [
        Planned("1", "monaural", "a.mp3", SHA, 10),
        Planned("1", "right", "a_r.mp3", SHA, 10),
        Planned("2", "monaural", "b.mp3", SHA, 10),
    ]
    assert [p.name for p in planned_files(recordings, content_types=("right",))] == ["a_r.mp3"]


def test_flac_is_checked_by_the_lossless_hash_and_wav_by_its_length_only():
    lossless = {"bytes": 99, "sha256": "b" * 64}
    recordings = [recording("1", monaural=entry("a.mp3", lossless=lossless), left=entry("a_l.mp3"))]
    assert list(planned_files(recordings, content_types=("monaural", "left"), fmt="flac")) == [
        Planned("1", "monaural", "a.flac", "b" * 64, 99)
    ]
    assert list(planned_files(recordings, content_types=("monaural", "left"), fmt="wav")) == [
        Planned("1", "monaural", "a.wav", None, None)
    ]


@pytest.mark.parametrize(
    "part_size, expected, offset",
    [(0, 100, 0), (40, 100, 40), (100, 100, 100), (101, 100, 0), (40, None, 40)],
)
def test_a_download_resumes_after_the_part_unless_the_part_is_longer_than_the_file(part_size, expected, offset):
    assert resume_offset(part_size, expected) == offset


def test_a_content_range_gives_its_start_and_total():
    assert content_range("bytes 100-199/200") == (100, 200)
    assert content_range("bytes */200") is None


def test_only_a_quoted_sha256_etag_is_taken_as_the_hash():
    assert sha256_of_etag(f'"{SHA}"') == SHA
    assert sha256_of_etag(f'W/"{SHA}"') is None
    assert sha256_of_etag('"abc"') is None
    assert sha256_of_etag(None) is None


def test_a_file_name_from_the_server_must_be_a_plain_name():
    assert disposition_name('attachment; filename="20190718161058-2006-2002-1563433858.66-SRC_l.mp3"').endswith("_l.mp3")
    for bad in ('attachment; filename="../etc/passwd"', 'attachment; filename=".hidden"', "attachment"):
        with pytest.raises(ClientError):
            disposition_name(bad)


def test_a_file_goes_into_the_folder_of_its_call_day():
    assert folder_of_name(Path("out"), "20190718161058-2006-2002-x-SRC.mp3") == Path("out/2019/07/18")


def test_exec_gets_the_paths_shell_quoted_and_empty_for_a_leg_that_is_not_there():
    command = exec_command(
        "asr {ID} {MONAURAL} {LEFT} {RIGHT} {OTHER}",
        recording_id="21061600000268000060",
        paths={"monaural": Path("/data/my calls/a.mp3"), "left": Path("/data/a_l.mp3"), "right": None},
    )
    assert command == "asr 21061600000268000060 '/data/my calls/a.mp3' /data/a_l.mp3 '' {OTHER}"


@pytest.mark.parametrize(
    "method, query, content_type, body, found",
    [
        ("GET", "ID=21061600000268000060&TEL=0312345678&DATE=2021-06-16%2020%3A03%3A33", "", b"", "21061600000268000060"),
        ("POST", "", "application/json", b'{"ID": "21061600000268000060"}', "21061600000268000060"),
        ("POST", "", "application/json", b'{"ID": 5}', "5"),
        ("POST", "", "application/x-www-form-urlencoded", b"ID=21061600000268000060&TEL=1", "21061600000268000060"),
        ("POST", "", "application/json", b'{"id": "lower"}', None),
        ("GET", "TEL=1", "", b"", None),
    ],
)
def test_the_notification_names_its_id_in_the_query_or_the_body(method, query, content_type, body, found):
    assert notification_id(method, query, content_type, body) == found


def test_a_webhook_id_is_remembered_after_a_restart(tmp_path):
    seen = SeenIds(tmp_path / "ids")
    assert seen.add("msg_1") is True
    assert seen.add("msg_1") is False
    assert SeenIds(tmp_path / "ids").add("msg_1") is False
    assert SeenIds(tmp_path / "ids").add("msg_2") is True


# --- the archive's checks -------------------------------------------------------------


def make_zip(path, files, manifest_rows=None):
    """A zip as the server builds it: the files and manifest.csv."""
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["filename", "request_id", "unique_id", "content_type", "bytes", "sha256", "duration"])
    for row in manifest_rows if manifest_rows is not None else [
        [name, "1", "1.1", "monaural", len(data), hashlib.sha256(data).hexdigest(), "1.0"] for name, data in files.items()
    ]:
        writer.writerow(row)
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr("manifest.csv", text.getvalue())
    return path


def test_an_archive_that_matches_its_manifest_is_unpacked(tmp_path):
    files = {"a.mp3": b"A" * 100, "b_l.mp3": b"B" * 50}
    rows = unpack(make_zip(tmp_path / "day.zip", files), tmp_path / "out")
    assert [r["filename"] for r in rows] == ["a.mp3", "b_l.mp3"]
    assert (tmp_path / "out" / "a.mp3").read_bytes() == files["a.mp3"]
    assert (tmp_path / "out" / "manifest.csv").exists()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.mp3", "b_l.mp3", "manifest.csv"]


def test_an_entry_that_differs_from_the_manifest_is_refused_and_nothing_is_unpacked(tmp_path):
    rows = [["a.mp3", "1", "1.1", "monaural", 100, hashlib.sha256(b"A" * 100).hexdigest(), "1.0"],
            ["b.mp3", "1", "1.1", "left", 50, hashlib.sha256(b"other").hexdigest(), "1.0"]]
    archive = make_zip(tmp_path / "day.zip", {"a.mp3": b"A" * 100, "b.mp3": b"B" * 50}, rows)
    (tmp_path / "out").mkdir()
    with pytest.raises(ArchiveRefused, match="b.mp3"):
        unpack(archive, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_an_entry_the_manifest_does_not_list_is_refused(tmp_path):
    rows = [["a.mp3", "1", "1.1", "monaural", 1, hashlib.sha256(b"A").hexdigest(), "1.0"]]
    archive = make_zip(tmp_path / "day.zip", {"a.mp3": b"A", "extra.mp3": b"E"}, rows)
    with pytest.raises(ArchiveRefused, match="extra.mp3"):
        unpack(archive, tmp_path / "out")


def test_a_manifest_naming_a_path_outside_the_folder_is_refused(tmp_path):
    rows = [["../evil.mp3", "1", "1.1", "monaural", 1, hashlib.sha256(b"A").hexdigest(), "1.0"]]
    archive = make_zip(tmp_path / "day.zip", {"../evil.mp3": b"A"}, rows)
    with pytest.raises(ArchiveRefused, match="not a plain file name"):
        unpack(archive, tmp_path / "out")
    assert not (tmp_path / "evil.mp3").exists()


def test_a_zip_with_a_damaged_entry_is_refused(tmp_path):
    data = bytes(range(256)) * 20
    archive = make_zip(tmp_path / "day.zip", {"a.mp3": data})
    raw = bytearray(archive.read_bytes())
    at = raw.find(data[:64])
    raw[at + 1000] ^= 0xFF
    archive.write_bytes(bytes(raw))
    with pytest.raises(ArchiveRefused, match="a.mp3"):
        unpack(archive, tmp_path / "out")
    assert not (tmp_path / "out" / "a.mp3").exists()


def test_not_a_zip_is_refused(tmp_path):
    (tmp_path / "day.zip").write_bytes(b"<html>not a zip</html>")
    with pytest.raises(ArchiveRefused, match="not a readable zip"):
        unpack(tmp_path / "day.zip", tmp_path / "out")


# --- the command line ------------------------------------------------------------------


def test_without_a_server_the_command_exits_2_naming_the_option(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("BIZTEL_URL", raising=False)
    assert main(["pull", "--date", "2021-09-13", "--out", str(tmp_path), "--token", "x"]) == 2
    assert "--server URL or set BIZTEL_URL" in capsys.readouterr().err


def test_without_a_token_the_command_exits_2(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("BIZTEL_TOKEN", raising=False)
    assert main(["--server", "http://127.0.0.1:9", "pull", "--date", "2021-09-13", "--out", str(tmp_path)]) == 2
    assert "no token" in capsys.readouterr().err


def test_a_bad_date_or_content_type_is_a_usage_error(tmp_path):
    for args in (["--date", "2021-9-13"], ["--date", "2021-09-13", "--content-type", "monaural,both"]):
        with pytest.raises(SystemExit) as exited:
            main(["pull", "--out", str(tmp_path), *args])
        assert exited.value.code == 2


def test_an_unreachable_server_is_retried_then_reported_with_exit_1(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("biztel_client.api.BACKOFF_FIRST", 0.01)
    code = main(["pull", "--server", "http://127.0.0.1:9", "--token", "x", "--date", "2021-09-13", "--out", str(tmp_path)])
    assert code == 1
    assert "gave up after 6 attempts" in capsys.readouterr().err


def test_receive_with_a_secret_that_is_not_whsec_base64_exits_2(tmp_path, capsys):
    code = main(["receive", "--listen", "127.0.0.1:0", "--out", str(tmp_path), "--secret", "whsec_!!!",
                 "--server", "http://127.0.0.1:9", "--token", "x"])
    assert code == 2
    assert "--secret is not a whsec_<base64> secret" in capsys.readouterr().err


def test_a_day_argument_is_a_date():
    from biztel_client.cli import day_argument

    assert day_argument("2021-09-13") == date(2021, 9, 13)


def test_the_systemd_unit_runs_receive_with_options_the_command_takes():
    import shlex

    from biztel_client.cli import parser

    unit = (Path(__file__).resolve().parents[2] / "deploy/systemd/biztel-client-receive.service").read_text()
    exec_start = unit.replace("\\\n", " ").split("ExecStart=", 1)[1].splitlines()[0]
    program, *args = shlex.split(exec_start)
    assert program.endswith("/bin/biztel-client")
    parsed = parser().parse_args(args)
    assert (parsed.command, parsed.listen, parsed.exec_command) == (
        "receive", "0.0.0.0:8080", "/usr/local/bin/transcribe {ID} {LEFT} {RIGHT}"
    )
    for name in ("BIZTEL_URL", "BIZTEL_TOKEN", "BIZTEL_WEBHOOK_SECRET"):
        assert f"#   {name}=" in unit
