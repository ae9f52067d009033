"""LAME, called through ctypes: the encoder library the `lame` command is made of.

lameenc (pinned in requirements.txt) links LAME statically and exports its whole C API
from its extension module; lameenc's own Python class cannot choose L/R stereo (it encodes
two channels as joint stereo) and does not hand out the LAME info tag, so the few calls we
need are bound here. A build whose module exports no LAME symbols falls back to the
system's libmp3lame (Debian: libmp3lame0, which the `lame` command uses). ctypes releases
the GIL for every call, so encoders in threads run in parallel.
"""

import ctypes
import ctypes.util

import lameenc

MONO = 3  # MPEG_mode of lame.h
STEREO = 0  # plain L/R: each channel coded on its own, no mid/side
VBR_OFF = 0


def _load():
    try:
        library = ctypes.CDLL(lameenc.__file__)
        library.lame_set_mode  # noqa: B018 - raises AttributeError when not exported
        return library
    except (OSError, AttributeError):
        name = ctypes.util.find_library("mp3lame")
        if name is None:
            raise ImportError("LAME is not available: neither lameenc exports it nor is libmp3lame installed") from None
        return ctypes.CDLL(name)


_lib = _load()
_P = ctypes.c_void_p
_INT = ctypes.c_int
for _name, _args, _result in (
    ("lame_init", [], _P),
    ("lame_close", [_P], _INT),
    ("lame_init_params", [_P], _INT),
    ("lame_set_num_channels", [_P, _INT], _INT),
    ("lame_set_in_samplerate", [_P, _INT], _INT),
    ("lame_set_out_samplerate", [_P, _INT], _INT),
    ("lame_set_brate", [_P, _INT], _INT),
    ("lame_set_mode", [_P, _INT], _INT),
    ("lame_set_quality", [_P, _INT], _INT),
    ("lame_set_VBR", [_P, _INT], _INT),
    ("lame_set_bWriteVbrTag", [_P, _INT], _INT),
    ("lame_set_findReplayGain", [_P, _INT], _INT),
    ("lame_encode_buffer", [_P, _P, _P, _INT, _P, _INT], _INT),
    ("lame_encode_flush", [_P, _P, _INT], _INT),
    ("lame_get_lametag_frame", [_P, _P, ctypes.c_size_t], ctypes.c_size_t),
    ("lame_get_encoder_delay", [_P], _INT),
    ("lame_get_encoder_padding", [_P], _INT),
    ("lame_get_frameNum", [_P], _INT),
    ("lame_get_lowpassfreq", [_P], _INT),
    ("lame_get_ATHtype", [_P], _INT),
    ("lame_get_VBR_q", [_P], _INT),
    ("get_lame_short_version", [], ctypes.c_char_p),
):
    _function = getattr(_lib, _name)
    _function.argtypes = _args
    _function.restype = _result

VERSION = _lib.get_lame_short_version().decode()


class LameError(RuntimeError):
    pass


class Encoder:
    """One CBR encode at the input's sample rate: mono, or 2 channels as L/R stereo.

    With the info tag on, LAME starts its output with a frame-sized placeholder that
    info_tag() later gives the bytes of (the caller writes them over the file's start);
    info_tag() is empty when the frame is too small to hold the tag (LAME then writes
    none: 16 kHz mono at 32 kbps), see recordings/mp3.py for that case."""

    def __init__(self, *, channels, sample_rate, kbps, quality):
        self._gfp = _lib.lame_init()
        if not self._gfp:
            raise LameError("lame_init failed")
        self.channels = channels
        for setter, value in (
            (_lib.lame_set_num_channels, channels),
            (_lib.lame_set_in_samplerate, sample_rate),
            (_lib.lame_set_out_samplerate, sample_rate),
            (_lib.lame_set_VBR, VBR_OFF),
            (_lib.lame_set_brate, kbps),
            (_lib.lame_set_mode, MONO if channels == 1 else STEREO),
            (_lib.lame_set_quality, quality),
            (_lib.lame_set_bWriteVbrTag, 1),
            # as `lame --noreplaygain`: nobody reads the gain, and it costs CPU
            (_lib.lame_set_findReplayGain, 0),
        ):
            setter(self._gfp, value)
        if _lib.lame_init_params(self._gfp) < 0:
            self.close()
            raise LameError(f"LAME refused {channels} channel(s) at {sample_rate} Hz and {kbps} kbps")
        self._buffer = ctypes.create_string_buffer(0)

    def _room(self, samples):
        # lame.h: a buffer of 1.25 * samples + 7200 bytes always suffices.
        needed = int(1.25 * samples) + 7200
        if len(self._buffer) < needed:
            self._buffer = ctypes.create_string_buffer(needed)
        return self._buffer

    def encode(self, *channels):
        """MP3 bytes for one block: one contiguous int16 array per channel, equal lengths."""
        count = len(channels[0])
        buffer = self._room(count)
        right = channels[1].ctypes.data if self.channels == 2 else None
        written = _lib.lame_encode_buffer(self._gfp, channels[0].ctypes.data, right, count, buffer, len(buffer))
        return _output(buffer, written, "lame_encode_buffer")

    def flush(self):
        buffer = self._room(0)
        return _output(buffer, _lib.lame_encode_flush(self._gfp, buffer, len(buffer)), "lame_encode_flush")

    def info_tag(self):
        """The LAME info tag frame for the file's start (after flush), or b""."""
        buffer = ctypes.create_string_buffer(4096)
        size = _lib.lame_get_lametag_frame(self._gfp, buffer, len(buffer))
        return ctypes.string_at(buffer, size) if size <= len(buffer) else b""

    def facts(self):
        """What an info tag written by us needs to know of this encode."""
        return {
            "delay": _lib.lame_get_encoder_delay(self._gfp),
            "padding": _lib.lame_get_encoder_padding(self._gfp),
            "frames": _lib.lame_get_frameNum(self._gfp),
            "lowpass": _lib.lame_get_lowpassfreq(self._gfp),
            "ath_type": _lib.lame_get_ATHtype(self._gfp),
            "vbr_q": _lib.lame_get_VBR_q(self._gfp),
        }

    def close(self):
        if self._gfp:
            _lib.lame_close(self._gfp)
            self._gfp = None

    def __del__(self):
        self.close()


def _output(buffer, written, function):
    """The bytes a LAME call wrote into `buffer`; it returns their count, or an error below 0."""
    if written < 0:
        raise LameError(f"{function} failed ({written})")
    return ctypes.string_at(buffer, written)
