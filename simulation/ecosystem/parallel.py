"""The generator's two writer processes: the CRM files in this process, everything else
in a forked child (the halves are independent and about equally long)."""

from __future__ import annotations

import multiprocessing as mp
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from simulation.ecosystem.common import Manifest


def run_pair(
    first: Callable[[Manifest], Any],
    second: Callable[[Manifest], Any],
    man: Manifest,
    processes: int,
) -> tuple[Any, Any]:
    """`first(man)` here and `second(man)` in a forked child process (in turn when
    `processes` < 2 or fork is unavailable). Both only write files and return small
    results, and draw no shared random numbers, so the output is the same either way.
    The child's manifest entries are merged into `man`; its failure is raised here."""
    if processes < 2 or "fork" not in mp.get_all_start_methods():
        return first(man), second(man)
    ctx = mp.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child_main, args=(second, man.root, send), daemon=True)
    child.start()
    send.close()
    try:
        result = first(man)
    except BaseException:
        child.kill()
        child.join()
        raise
    try:
        ok, payload, files = receive.recv()
    except EOFError:
        ok, payload, files = False, f"exit code {child.exitcode}", {}
    child.join()
    if not ok:
        raise RuntimeError(f"generator child process failed:\n{payload}")
    man.files.update(files)
    return result, payload


def _child_main(fn: Callable[[Manifest], Any], root: Path, send: Connection) -> None:
    man = Manifest(root)
    try:
        send.send((True, fn(man), man.files))
    except BaseException:
        send.send((False, traceback.format_exc(), {}))
    finally:
        send.close()
