"""zhmask: segmentation-aware Chinese pretraining data, written to Arrow shards."""

__version__ = "0.1.0"

from zhmask.config import BuildConfig  # noqa: E402
from zhmask.record import Document, Example  # noqa: E402


def build_corpus(config: "BuildConfig"):
    """Run a build; see :func:`zhmask.api.build_corpus`."""
    from zhmask.api import build_corpus as _build

    return _build(config)


__all__ = ["BuildConfig", "Document", "Example", "build_corpus", "__version__"]
