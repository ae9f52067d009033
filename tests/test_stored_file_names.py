"""The names an ingested call's files are stored under (moved out of test_naming.py,
whose tests are pure and run without the database)."""

from tests.factories import stored_recording



