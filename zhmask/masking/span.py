"""``span``: SpanBERT's span masking (Joshi et al. 2020).

Span lengths, counted in words, follow a geometric distribution Geo(``span_p`` = 0.2) clipped
at ``span_max`` = 10 words and renormalised (as SpanBERT's code does; mean 3.8 words); a span
starts at a word start and covers whole words, so it is anchored at word boundaries.  Spans
are selected one after another without overlap and never cross a [SEP]; the
[MASK]/random/keep fate is drawn once per span, as in the paper.
"""
from __future__ import annotations

from zhmask.errors import ZhmaskError
from zhmask.masking import STRATEGIES, register
from zhmask.masking.ngram import make_ngram_mask
from zhmask.masking.units import geometric_probs

SPAN_OPTIONS = {"span_p": 0.2, "span_max": 10}


def span_probs(config):
    p = STRATEGIES.option("span", config, "span_p")
    mx = STRATEGIES.option("span", config, "span_max")
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p <= 1:
        raise ZhmaskError(f"--option span_p: expected a probability in (0, 1], got {p!r}")
    if isinstance(mx, bool) or not isinstance(mx, int) or not 1 <= mx <= 64:
        raise ZhmaskError(f"--option span_max: expected an integer in [1, 64], got {mx!r}")
    return geometric_probs(float(p), mx)


@register("span", options=SPAN_OPTIONS, validate=span_probs)
def make(config, ctx):
    return make_ngram_mask("span", config, ctx, span_probs(config), unit_word="span")
