"""File names of SPEC.md §2.2. Pure functions, no I/O."""

from biztel.numbers import normalize_number

LEG_SUFFIX = {"monaural": "", "left": "_l", "right": "_r", "stereo": "_lr"}
SIDES = ("SRC", "DST")

def file_name(*, started_at, caller, callee, key, side, content_type):
    """started_at must already be in the server's local time."""
    if side not in SIDES:
        raise ValueError(f"side must be SRC or DST, not {side!r}")
    stamp = started_at.strftime("%Y%m%d%H%M%S")
    number_a, number_b = normalize_number(caller), normalize_number(callee)
    return f"{stamp}-{number_a}-{number_b}-{key}-{side}{LEG_SUFFIX[content_type]}.mp3"


def lossless_path(mp3_path):
    """The FLAC copy lives beside its MP3 under the same name: `….mp3` -> `….flac`."""
    return with_extension(mp3_path, "flac")


def with_extension(name, extension):
    """A stored file's name for another format: `…-SRC_l.mp3` -> `…-SRC_l.wav`."""
    return name.removesuffix(".mp3") + "." + extension


def day_folder(started_at):
    """Files of one day live together: YYYY/MM/DD."""
    return started_at.strftime("%Y/%m/%d")
