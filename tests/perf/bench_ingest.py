"""Ingest of a 60-minute 8 kHz stereo 16-bit WAV (three MP3s: mixed, left, right)
against the Debian `lame` command encoding the same three legs one after the other
(`lame --noreplaygain -b 32 --cbr -m m`, one process per leg), in one run.

Prints the CPU ratio (user+system, ingest / lame: the steady figure on a shared machine),
the wall-time ratio (each the median of three rounds of lame and the ingest in turn) and
the ingest's peak memory, with the default settings and then
with `stereo_file` and with `keep_lossless` on, to show what each adds. The ingest runs
as `manage.py ingest_recording` in a subprocess, so its figures include starting
Django, reading the WAV, the database transaction and moving the files into place.
"""

import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from recordings import audio
from tests.conftest import ROOT
from tests.conftest import ensure_debian_packages
from tests.perf.support import bench_database, media_root

MINUTES = 60
ROUNDS = 3  # each figure is the median of this many rounds
RATE = 8000
BLOCK = RATE * 10


def speechlike(rng, n, start, base):
    """Tones that come and go, with a little noise: keeps the encoder honest."""
    t = (start + np.arange(n)) / RATE
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 0.7 * t) ** 2
    signal = np.sin(2 * np.pi * base * t) + 0.5 * np.sin(2 * np.pi * base * 2.3 * t)
    return (6000 * envelope * signal + rng.normal(0, 300, n)).astype(np.int16)


def wav_header(channels, frames):
    data = frames * channels * 2
    fmt = struct.pack("<HHIIHH", 1, channels, RATE, RATE * channels * 2, channels * 2, 16)
    return b"RIFF" + struct.pack("<I", 36 + data) + b"WAVEfmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack(
        "<I", data
    )


def write_inputs(folder):
    """The stereo call, and the three mono legs lame gets (the mix is the same saturating sum)."""
    frames = MINUTES * 60 * RATE
    rng = np.random.default_rng(1)
    paths = {name: folder / f"{name}.wav" for name in ("stereo", "left", "right", "mixed")}
    files = {name: open(path, "wb") for name, path in paths.items()}
    try:
        for name, f in files.items():
            f.write(wav_header(2 if name == "stereo" else 1, frames))
        for start in range(0, frames, BLOCK):
            n = min(BLOCK, frames - start)
            left, right = speechlike(rng, n, start, 220), speechlike(rng, n, start, 330)
            files["stereo"].write(np.stack([left, right], axis=1).astype("<i2").tobytes())
            files["left"].write(left.astype("<i2").tobytes())
            files["right"].write(right.astype("<i2").tobytes())
            files["mixed"].write(audio.mix(left, right).astype("<i2").tobytes())
    finally:
        for f in files.values():
            f.close()
    return paths


def time_lame(paths, out):
    """(seconds, CPU seconds) of lame encoding the three legs one after the other."""
    started = time.perf_counter()
    cpu = 0.0
    for name in ("mixed", "left", "right"):
        process = subprocess.Popen(
            ["lame", "--quiet", "--noreplaygain", "-b", "32", "--cbr", "-m", "m", str(paths[name]), str(out / f"{name}.mp3")]
        )
        _, status, usage = os.wait4(process.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"lame failed on {name}")
        cpu += usage.ru_utime + usage.ru_stime
    return time.perf_counter() - started, cpu


def run_ingest(stereo, database_url, media, folder, *, number, settings=()):
    """(seconds, CPU seconds, peak RSS in MiB) of one `manage.py ingest_recording` process,
    after `biztel_settings --set` of the given NAME=VALUE settings.

    GNU time starts it: a child's peak RSS counts its parent's at fork time too, and this
    benchmark's own process (Django, the generated audio) is bigger than the ingest."""
    env = {**os.environ, "DATABASE_URL": database_url, "MEDIA_ROOT": str(media)}
    configure = [sys.executable, "manage.py", "biztel_settings", "--set", "stereo_file=false", "--set", "keep_lossless=false"]
    for item in settings:
        configure += ["--set", item]
    subprocess.run(configure, cwd=ROOT, env=env, capture_output=True, check=True)
    report = folder / "time.txt"
    command = [
        "/usr/bin/time", "-f", "%e %U %S %M", "-o", str(report),
        sys.executable, "manage.py", "ingest_recording",
        "--request-id", f"260101000000000000{number:02d}", "--unique-id", f"1767225600.{number}",
        "--started-at", "2026-01-01 09:00:00", "--caller", "0312345678", "--callee", "2001",
        "--side", "DST", "--external-number", "0312345678", "--extension", "2001", "--tel", "0312345678",
        "--stereo", str(stereo),
    ]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"ingest_recording failed: {result.stderr[-2000:]}")
    elapsed, user, system, max_kib = report.read_text().split()[-4:]
    return float(elapsed), float(user) + float(system), int(max_kib) / 1024


# What each run stores besides the three MP3s (mixed, left, right).
RUNS = (
    ("defaults", (), 3, 0),
    ("stereo_file=true", ("stereo_file=true",), 4, 0),
    ("keep_lossless=true", ("keep_lossless=true",), 3, 3),
)


def main():
    ensure_debian_packages(("lame", "lame"), ("/usr/bin/time", "time"))
    print(f"(CPU is user+system time; wall time depends on what else the machine runs: {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f} at the start)", flush=True)
    with tempfile.TemporaryDirectory(prefix="biztel-bench-ingest-") as tmp:
        folder = Path(tmp)
        paths = write_inputs(folder)
        with bench_database() as database_url:
            for index, (label, settings, mp3s, flacs) in enumerate(RUNS):
                rounds = []
                # lame and the ingest in turn, so a change in the machine's load hits both alike
                for round_number in range(ROUNDS):
                    lame_seconds, lame_cpu = time_lame(paths, folder)
                    with media_root() as media:
                        seconds, cpu, peak_mib = run_ingest(
                            paths["stereo"], database_url, media, folder, number=index * ROUNDS + round_number + 1,
                            settings=settings,
                        )
                        stored = (len(list(media.rglob("*.mp3"))), len(list(media.rglob("*.flac"))))
                    if stored != (mp3s, flacs):
                        raise RuntimeError(f"{label}: expected {mp3s} MP3s and {flacs} FLACs, got {stored}")
                    print(f"lame x3 one after the other ({MINUTES} min 8 kHz, -b 32 --cbr -m m, its default -q 3): "
                          f"{lame_seconds:.1f} s, {lame_cpu:.1f} s CPU; ingest_recording, {label}: {seconds:.1f} s, "
                          f"{cpu:.1f} s CPU, peak RSS {peak_mib:.0f} MiB", flush=True)
                    rounds.append((cpu / lame_cpu, seconds / lame_seconds, peak_mib))
                suffix = "" if label == "defaults" else f" [{label}]"
                cpu_ratios, time_ratios, peaks = zip(*rounds)
                print(f"ingest CPU ratio (ingest_recording / lame x3){suffix}: {_summary(cpu_ratios)}", flush=True)
                print(f"ingest time ratio (ingest_recording / lame x3){suffix}: {_summary(time_ratios)}", flush=True)
                print(f"ingest peak memory (RSS of the ingest process){suffix}: {max(peaks):.0f} MiB", flush=True)


def _summary(ratios):
    return f"{statistics.median(ratios):.2f} (median of {len(ratios)}; {min(ratios):.2f}-{max(ratios):.2f})"
