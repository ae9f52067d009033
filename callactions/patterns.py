"""Regular expressions written by administrators: the PCRE `/…/flags` form or a bare
pattern, always run with a time limit so a catastrophic pattern cannot hold a worker."""

import functools

import regex

# A response body is at most 64 KB; a sane pattern is done with it in microseconds.
TIME_LIMIT_SECONDS = 1.0

_FLAGS = {"i": regex.IGNORECASE, "m": regex.MULTILINE, "s": regex.DOTALL, "x": regex.VERBOSE, "u": regex.UNICODE}
_PCRE = regex.compile(r"/(.*)/([A-Za-z]*)", regex.DOTALL)


class PatternError(ValueError):
    pass


@functools.lru_cache(maxsize=256)
def compile_pattern(text):
    """The compiled pattern, or PatternError with a message an administrator understands."""
    source, flags = text, 0
    pcre = _PCRE.fullmatch(text)
    if pcre:
        source = pcre.group(1)
        for letter in pcre.group(2):
            if letter not in _FLAGS:
                raise PatternError(f"unknown flag {letter!r} after /…/ (use i, m, s, x or u)")
            flags |= _FLAGS[letter]
    try:
        return regex.compile(source, flags)
    except regex.error as exc:
        raise PatternError(f"invalid regular expression: {exc}") from None


def group_names(text):
    return list(compile_pattern(text).groupindex)


def search(text, subject):
    """The match object or None; PatternError when the time limit is hit."""
    try:
        return compile_pattern(text).search(subject, timeout=TIME_LIMIT_SECONDS)
    except TimeoutError:
        raise PatternError(f"pattern gave up after {TIME_LIMIT_SECONDS:g} s (too much backtracking)") from None
