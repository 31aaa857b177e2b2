"""Processes of this machine: whether a pid names a live process."""

from __future__ import annotations

import os


def pid_exists(pid: int) -> bool:
    """Whether a process ``pid`` exists (signal 0: nothing is sent).

    A process of another user exists too (``PermissionError``). A zombie exists until
    it is reaped; callers that must tell it apart read ``/proc/<pid>/stat``.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
