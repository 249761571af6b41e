"""Recording the day's normalized trades and quotes, and reading them back (docs/recording.md)."""

from daemon.recording.reader import RecordingFileError, list_days, read_day, read_file
from daemon.recording.writer import Recorder

__all__ = ["Recorder", "RecordingFileError", "list_days", "read_day", "read_file"]
