"""`biztel-client pull` against the running product (nginx over TLS, or gunicorn direct)."""

import os
import pty
import threading
import time
from pathlib import Path

import pytest
from conftest import DAY, CuttingProxy, day_files, last_log_id, log_since, run_client

pytestmark = [pytest.mark.timeout(300), pytest.mark.django_db]

DAY_FOLDER = Path(*DAY.split("-"))


def pulled(out):
    folder = out / DAY_FOLDER
    return {p.name: p.read_bytes() for p in folder.iterdir()} if folder.exists() else {}


def test_a_day_pulled_at_one_request_per_second_is_byte_identical_to_the_server(live, system, tmp_path):
    system(burst_limit_per_second=1)
    before = last_log_id()
    result = run_client(live, "pull", "--date", DAY, "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert pulled(tmp_path) == day_files(live)
    assert len(day_files(live)) == 9
    # the client met the burst limit and waited it out
    assert any(e.status == 429 for e in log_since(before)), "no burst 429 was met"
    assert "9 files verified (9 downloaded, 0 already there), 0 failed" in result.stderr


def test_a_second_pull_rewrites_nothing_and_fetches_no_file(live, tmp_path):
    assert run_client(live, "pull", "--date", DAY, "--out", str(tmp_path)).returncode == 0
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / DAY_FOLDER).iterdir()}
    before = last_log_id()
    result = run_client(live, "pull", "--date", DAY, "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / DAY_FOLDER).iterdir()} == mtimes
    assert [(e.method, e.status) for e in log_since(before, recording__isnull=False)] == []
    assert "9 files verified (0 downloaded, 9 already there)" in result.stderr


def test_a_half_written_part_is_completed_with_a_range_request(live, tmp_path):
    name, data = sorted(day_files(live).items())[0]
    folder = tmp_path / DAY_FOLDER
    folder.mkdir(parents=True)
    half = len(data) // 2
    (folder / f"{name}.part").write_bytes(data[:half])
    before = last_log_id()
    result = run_client(live, "pull", "--date", DAY, "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert (folder / name).read_bytes() == data
    assert not (folder / f"{name}.part").exists()
    assert [e.status for e in log_since(before, recording__isnull=False) if e.status != 200] == [206]
    # behind nginx the bytes are nginx's to send: its download log has the range it sent
    assert f" 206 {len(data) - half} file=/_protected/media/" in live.download_log()


def test_a_part_that_is_not_the_files_beginning_is_fetched_again_whole(live, tmp_path):
    name, data = sorted(day_files(live).items())[0]
    folder = tmp_path / DAY_FOLDER
    folder.mkdir(parents=True)
    (folder / f"{name}.part").write_bytes(b"\x00" * (len(data) // 2))
    result = run_client(live, "pull", "--date", DAY, "--out", str(tmp_path), "--content-type", "monaural")
    assert result.returncode == 0, result.stderr
    assert (folder / name).read_bytes() == data


def test_a_file_already_there_with_other_bytes_is_replaced(live, tmp_path):
    name, data = sorted(day_files(live).items())[0]
    folder = tmp_path / DAY_FOLDER
    folder.mkdir(parents=True)
    (folder / name).write_bytes(b"not the recording")
    assert run_client(live, "pull", "--date", DAY, "--out", str(tmp_path)).returncode == 0
    assert (folder / name).read_bytes() == data


def test_a_connection_cut_mid_file_is_resumed(live, tmp_path):
    host_port = int(live.direct_url.rsplit(":", 1)[1])
    # the listing, then a 33 kB file: the first cut lands in the first file, after a chunk has arrived
    proxy = CuttingProxy(host_port, cut_after=30_000, cuts=2)
    try:
        result = run_client(live, "pull", "--date", DAY, "--out", str(tmp_path),
                            server=f"http://127.0.0.1:{proxy.port}")
    finally:
        proxy.close()
    assert result.returncode == 0, result.stderr
    assert pulled(tmp_path) == day_files(live)
    ranges = [line for line in bytes(proxy.sent).split(b"\r\n") if line.lower().startswith(b"range: bytes=")]
    assert proxy.cuts_left == 0
    assert ranges, bytes(proxy.sent).decode()
    assert all(not line.endswith(b"=0-") for line in ranges)


def test_a_server_answering_503_is_retried_with_backoff(live, tmp_path):
    host_port = int(live.direct_url.rsplit(":", 1)[1])
    proxy = CuttingProxy(host_port, failures=2)
    started = time.monotonic()
    try:
        result = run_client(live, "pull", "--date", DAY, "--out", str(tmp_path), "--content-type", "monaural",
                            server=f"http://127.0.0.1:{proxy.port}")
    finally:
        proxy.close()
    assert result.returncode == 0, result.stderr
    assert proxy.failures_left == 0
    assert bytes(proxy.sent).count(b"GET /public/api/v1/monitor/?date=") == 3  # two 503s, then the listing
    assert time.monotonic() - started >= 3  # waited 1 s, then 2 s
    assert pulled(tmp_path) == {n: d for n, d in day_files(live).items() if n.endswith("-DST.mp3")}


def test_the_content_type_option_pulls_only_those_legs(live, tmp_path):
    result = run_client(live, "pull", "--date", DAY, "--out", str(tmp_path), "--content-type", "left,right")
    assert result.returncode == 0, result.stderr
    assert sorted(pulled(tmp_path)) == sorted(n for n in day_files(live) if n.endswith(("_l.mp3", "_r.mp3")))


def test_the_monthly_limit_stops_the_pull_with_exit_code_3(live, system, tmp_path):
    from biztel.models import MonthlyUsage

    used = MonthlyUsage.objects.order_by("-month").values_list("requests", flat=True).first() or 0
    system(monthly_request_limit=used + 3)  # the listing and two files
    result = run_client(live, "pull", "--date", DAY, "--out", str(tmp_path))
    assert result.returncode == 3, result.stderr
    assert "stopped: the month's quota is used up (exceptions.AccessLimitException.)" in result.stderr
    assert len(pulled(tmp_path)) == 2
    assert not list((tmp_path / DAY_FOLDER).glob("*.part"))


def test_a_bad_token_exits_1_with_the_servers_message(live, tmp_path):
    result = run_client(live, "pull", "--date", DAY, "--out", str(tmp_path), "--token", "0" * 80, token=False)
    assert result.returncode == 1
    assert "HTTP 401 UNAUTHENTICATED: Unauthenticated: method=personal_token, cause=invalid token." in result.stderr


def test_the_token_comes_from_a_file_or_the_environment(live, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(live.token + "\n")
    assert run_client(live, "pull", "--date", DAY, "--out", str(tmp_path / "a"), "--token-file", str(token_file),
                      token=False).returncode == 0
    assert run_client(live, "pull", "--date", DAY, "--out", str(tmp_path / "b"), token=False,
                      env={"BIZTEL_TOKEN": live.token}).returncode == 0
    assert pulled(tmp_path / "a") == pulled(tmp_path / "b") == day_files(live)


def test_without_the_servers_certificate_tls_is_refused(live, tmp_path):
    import subprocess

    from conftest import CLIENT

    result = subprocess.run(
        [str(CLIENT), "pull", "--date", DAY, "--out", str(tmp_path), "--server", live.base_url, "--token", live.token],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1
    assert "TLS" in result.stderr and "--cacert" in result.stderr


def on_a_terminal(live, *args):
    """Run the client with stderr on a pseudo-terminal; returns (exit code, what the terminal showed)."""
    master, slave = pty.openpty()
    shown = bytearray()

    def read():
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                return
            if not data:
                return
            shown.extend(data)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        result = run_client(live, *args, stderr=slave, stdout=None, capture_output=False,
                            env={"TERM": "xterm-256color", "COLUMNS": "120"})
    finally:
        os.close(slave)
        reader.join(timeout=5)
        os.close(master)
    return result.returncode, shown.decode(errors="replace")


def test_a_progress_bar_of_files_and_bytes_is_drawn_on_a_terminal(live, tmp_path):
    code, shown = on_a_terminal(live, "pull", "--date", DAY, "--out", str(tmp_path))
    assert code == 0
    assert f"{DAY} files" in shown and f"{DAY} bytes" in shown
    assert "9/9" in shown
    assert "\x1b[" in shown


def test_no_progress_bar_with_quiet_or_without_a_terminal(live, tmp_path):
    code, shown = on_a_terminal(live, "pull", "--date", DAY, "--out", str(tmp_path / "a"), "--quiet")
    assert code == 0
    assert shown == ""
    result = run_client(live, "pull", "--date", DAY, "--out", str(tmp_path / "b"))
    assert result.returncode == 0
    assert "\x1b[" not in result.stderr and "files" not in result.stderr.split("biztel-client:")[0]
