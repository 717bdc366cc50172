"""What every benchmark's report needs: the machine it ran on, and a section written between two markers."""
from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (else what platform knows)."""
    try:
        for ln in Path("/proc/cpuinfo").read_text().splitlines():
            if ln.startswith("model name"):
                return ln.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine() -> str:
    """Cores, CPU, Python and the load at the start: the line every report opens with."""
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    return (f"{os.cpu_count()} cores (nproc {len(os.sched_getaffinity(0))}), {cpu_model()}; Python "
            f"{platform.python_version()}; load average at start {load:.2f}")


def write_section(path: Path, name: str, body: str) -> None:
    """Replace the ``<!-- NAME:begin -->`` .. ``<!-- NAME:end -->`` section of ``path`` (appended
    when missing), so that the hand-written text around generated tables stays."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{body.strip()}\n{end}"
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    if begin in old and end in old:
        new = old[:old.index(begin)] + block + old[old.index(end) + len(end):]
    else:
        new = (old.rstrip() + "\n\n" if old.strip() else "") + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new, encoding="utf-8")

