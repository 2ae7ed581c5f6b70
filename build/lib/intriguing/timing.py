"""The build's timing record: how long each chapter and each training stage took, and where.

While ``$INTRIGUING_TIMINGS`` names a file, :func:`record` appends one JSON line per timed event
to it (a chapter executed, a training stage run; a network loaded from the cache is not an
event). :func:`summarise` turns those lines into one record of the build, which
``python -m intriguing build`` writes beside the HTML as ``timings.json`` and, for a cold build of
the whole book, keeps under ``timings/<profile>.json``; :func:`readme_table` makes the README's
profile table from those records:

    python -m intriguing.timing timings/smoke.json timings/full.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .hardware import device

__all__ = ["ENV_VAR", "readme_table", "record", "summarise"]

ENV_VAR = "INTRIGUING_TIMINGS"


def record(kind: str, name: str, seconds: float, **info: Any) -> None:
    """Append one event to ``$INTRIGUING_TIMINGS`` (nothing when it is unset).

    Args:
        kind: ``"chapter"`` or ``"training"``.
        name: the chapter's or network's name.
        seconds: its wall time.
        info: anything else worth keeping (stage, iterations, why it stopped).
    """
    path = os.environ.get(ENV_VAR)
    if not path:
        return
    if not seconds >= 0:
        raise ValueError(f"seconds must be a non-negative number, got {seconds}")
    line = json.dumps({"kind": kind, "name": name, "seconds": round(float(seconds), 2), **info})
    with open(path, "a", encoding="utf-8") as out:
        out.write(line + "\n")


def summarise(events_file: Path, profile: str, wall_seconds: float) -> dict[str, Any]:
    """One build's record from its event lines.

    Args:
        events_file: the JSON lines written by :func:`record`.
        profile: the profile the build ran.
        wall_seconds: the whole build's wall time, HTML included.

    Returns:
        ``profile``, ``device``, ``torch_threads``, ``machine``, ``wall_seconds``, ``chapters``
        (name -> seconds), ``training`` (one entry per stage trained, in order) and
        ``training_seconds`` (their sum).

    Raises:
        ValueError: a line of the file is not an event.
    """
    events = []
    for number, line in enumerate(Path(events_file).read_text(encoding="utf-8").splitlines(), 1):
        try:
            event = json.loads(line)
            if event["kind"] not in ("chapter", "training"):
                raise ValueError(f"unknown kind {event['kind']!r}")
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{events_file}:{number} is not a timing event: {error}") from error
        events.append(event)
    training = [{k: v for k, v in e.items() if k != "kind"} for e in events if e["kind"] == "training"]
    return {"profile": profile, "device": str(device()), "torch_threads": torch.get_num_threads(),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "wall_seconds": round(wall_seconds, 1),
            "chapters": {e["name"]: e["seconds"] for e in events if e["kind"] == "chapter"},
            "training": training, "training_seconds": round(sum(e["seconds"] for e in training), 2)}


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"


def readme_table(records: Sequence[dict[str, Any]]) -> str:
    """The README's profile table (markdown), one row per build record."""
    lines = ["| profile | device, threads | whole build | of which training | slowest chapter |",
             "|---|---|---|---|---|"]
    for rec in records:
        slowest = max(rec["chapters"].items(), key=lambda kv: kv[1], default=("none", 0.0))
        lines.append(f"| `{rec['profile']}` | {rec['device']} ({rec['machine']}), {rec['torch_threads']} threads "
                     f"| {_minutes(rec['wall_seconds'])} | {_minutes(rec['training_seconds'])} "
                     f"| {slowest[0]}, {_minutes(slowest[1])} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m intriguing.timing",
                                     description="Print the README's profile table from build records.")
    parser.add_argument("records", type=Path, nargs="+", help="timing records, e.g. timings/full.json")
    args = parser.parse_args(argv)
    print(readme_table([json.loads(path.read_text(encoding="utf-8")) for path in args.records]))


if __name__ == "__main__":
    main()
