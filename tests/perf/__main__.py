"""`make bench`: run every tests/perf/bench_*.py (its main()) and print its ratios.

Benchmarks are not part of the test suite; each measures its reference in the
same run and prints `<name>: <ratio>` lines. Pass names to run only some:
`python -m tests.perf download ingest`.
"""

import importlib
import os
import pkgutil
import sys
from pathlib import Path

import django


def main(selected):
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "biztel.settings")
    # A real database but no production: a throwaway key (settings refuse to guess one).
    os.environ.setdefault("SECRET_KEY", "bench-only-not-a-secret")
    here = Path(__file__).parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    if selected:
        names = [n for n in names if n.removeprefix("bench_") in selected]
    django.setup()
    failed = []
    for name in names:
        print(f"== {name}", flush=True)
        module = importlib.import_module(f"tests.perf.{name}")
        try:
            module.main()
        except Exception as exc:  # one broken benchmark should not hide the others
            failed.append(name)
            print(f"{name} failed: {exc!r}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
