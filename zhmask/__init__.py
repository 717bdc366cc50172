"""zhmask: segmentation-aware Chinese pretraining data, written to Arrow shards."""

__version__ = "0.1.0"

from zhmask.config import BuildConfig  # noqa: E402


def __getattr__(name: str):
    """``Document`` and ``Example`` on first use: importing zhmask (and its console script)
    imports no numpy, so the CLI can set numpy's thread pool up first (:func:`zhmask.cli.run`)."""
    if name in ("Document", "Example"):
        from zhmask import record

        return getattr(record, name)
    raise AttributeError(f"module 'zhmask' has no attribute {name!r}")


def build_corpus(config: "BuildConfig"):
    """Run a build; see :func:`zhmask.api.build_corpus`."""
    from zhmask.api import build_corpus as _build

    return _build(config)


__all__ = ["BuildConfig", "Document", "Example", "build_corpus", "__version__"]
