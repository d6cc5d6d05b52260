"""Run the vrec CLI and write its own peak RSS (VmHWM, bytes) to a file as it exits.

    python bench/peak.py OUT export 12 --format csv -o rows.csv

What a benchmark uses for a child's memory: ``wait4``'s ``ru_maxrss`` carries the high-water
mark of the parent's pages over ``fork``/``exec`` (a benchmark that seeded a million rows
would see its own size), while VmHWM belongs to the address space the CLI runs in.
"""

from __future__ import annotations

import atexit
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def vm(key: str) -> int:
    """This process's ``VmHWM`` (peak RSS) or ``VmRSS``, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {key} in /proc/self/status (Linux only)")


def main() -> None:
    out = Path(sys.argv[1])
    atexit.register(lambda: out.write_text(str(vm("VmHWM"))))
    from worker.cli import app

    app(args=sys.argv[2:], prog_name="vrec")


if __name__ == "__main__":
    main()
