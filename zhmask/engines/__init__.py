"""Engines run work units: ``local`` (this process or a process pool) and ``ray``.

``ENGINES`` holds each engine's run function ``run(config, units, out, collect, finish)``,
registered here and imported only when a build selects it (Ray's import is seconds; the process
pool's modules are start-up time).  Once every unit is done, ``finish(map)`` runs with the
engine's workers still up (the shuffle's jobs go through ``map``) and its result is returned.
An engine subclasses :class:`zhmask.engines.base.Engine`: the job
a worker runs, the error mapping and the search for a document that kills a worker are shared.
"""
from __future__ import annotations

from zhmask.registry import Registry

ENGINES = Registry("engine")


@ENGINES.register("local", fields=("workers",),
                  help="this machine: this process, or --workers processes (default)")
def _local(config, units, out, collect, finish):
    from zhmask.engines.local import LocalEngine

    return LocalEngine(config, out, collect).run(units, finish)


@ENGINES.register("ray", fields=("workers", "ray_address"),
                  help="Ray tasks, on a local Ray or a cluster (pip install 'zhmask[ray]')")
def _ray(config, units, out, collect, finish):
    from zhmask.engines.ray_engine import RayEngine

    return RayEngine(config, out, collect).run(units, finish)
