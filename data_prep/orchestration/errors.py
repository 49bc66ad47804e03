"""Errors a person can read: what `launch.py` prints for the failures a user can fix.

A stage that fails on bad input raises one of `EXPECTED` with a message naming the file or
field (the stages' own convention). `report_expected_errors` turns such an exception into
one or two lines on stderr (the message, then what to do) and exit status 1; the traceback
is printed too only with `--verbosity=1` (absl's flag) or `DVC_TRACEBACK=1` in the
environment. Anything else (a bug) keeps Python's traceback.
"""
from __future__ import annotations

import contextlib
import errno
import os
import sys
from collections.abc import Iterator

from data_prep.annotations.errors import AnnotationError
from data_prep.infra.workdir_lock import ResumeConfigError, WorkdirLockedError

TRACEBACK_ENV = "DVC_TRACEBACK"

# Order matters: the first matching class gives the hint.
EXPECTED: tuple[type[BaseException], ...] = (
    WorkdirLockedError, ResumeConfigError, AnnotationError, FileNotFoundError,
    PermissionError, OSError, KeyError, ValueError, RuntimeError)


def _message(err: BaseException) -> str:
    if isinstance(err, KeyError) and len(err.args) == 1 and isinstance(err.args[0], str):
        return err.args[0]  # str(KeyError) would add quotes and escape newlines
    text = str(err)
    if isinstance(err, OSError) and err.filename and str(err.filename) not in text:
        text = f"{err.filename}: {text}"
    return text or type(err).__name__


def hint(err: BaseException) -> str:
    """What the person can do about `err` (one line)."""
    if isinstance(err, WorkdirLockedError | ResumeConfigError):
        return ""  # their messages say what to do
    if isinstance(err, AnnotationError):
        return "fix the annotation file named above (the field and video are named)"
    if isinstance(err, FileNotFoundError):
        return "check the path (relative paths are relative to the working directory)"
    if isinstance(err, PermissionError):
        return "check the file's permissions or choose another path / --workdir"
    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        return ("the disk is full: free space or use another --workdir; the run resumes "
                "where it stopped (outputs are written atomically)")
    if isinstance(err, KeyError | ValueError):
        return "check the config value or input named above (--config FILE --helpfull lists " \
               "the flags)"
    return ""


def want_traceback() -> bool:
    """`--verbosity` >= 1 (absl) or DVC_TRACEBACK=1."""
    if os.environ.get(TRACEBACK_ENV, "") not in ("", "0"):
        return True
    try:
        from absl import flags

        return flags.FLAGS.is_parsed() and flags.FLAGS.verbosity >= 1
    except Exception:  # noqa: BLE001 - no absl flags: no traceback
        return False


def format_error(err: BaseException) -> str:
    """The lines printed for an expected error (without traceback)."""
    kind = "disk full" if isinstance(err, OSError) and err.errno == errno.ENOSPC else (
        type(err).__name__)
    lines = [f"error ({kind}): {_message(err)}"]
    extra = hint(err)
    if extra:
        lines.append(f"  -> {extra} (traceback: --verbosity=1 or {TRACEBACK_ENV}=1)")
    else:
        lines.append(f"  (traceback: --verbosity=1 or {TRACEBACK_ENV}=1)")
    return "\n".join(lines)


@contextlib.contextmanager
def report_expected_errors() -> Iterator[None]:
    """`with report_expected_errors():` the stage; an EXPECTED error exits with status 1 and
    a short message (module docstring)."""
    try:
        yield
    except EXPECTED as err:
        if want_traceback():
            raise
        print(format_error(err), file=sys.stderr, flush=True)
        raise SystemExit(1) from None
