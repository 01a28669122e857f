"""``linear_scan``'s ``associative`` backend: a parallel scan over Lu et al. (2023)'s resettable ⊕.

An element ``(a, b, d)`` stands for the affine map ``h -> a * h + b``, with ``d = 1`` meaning
"this step starts a new episode, discard the incoming state". Because ⊕ is associative, all
prefixes ``e_0 ⊕ e_1 ⊕ ... ⊕ e_t`` come out of a log-depth scan instead of an ``L``-step loop;
the state ``h_t`` is the ``b`` of prefix ``t`` once ``h0`` is folded into the first element.

The scan is the work-efficient odd/even (Blelloch-style) recursion: combine neighbouring pairs,
scan the half-length sequence of pairs, then fill in the even positions from the odd ones.
That is ``O(L)`` work and ``2 log2 L`` sequential steps, each a handful of vectorised torch
ops, so autograd differentiates it with no custom backward.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ssmrl_lib.scan.resets import expand_reset

# (a, b, d): multiplier, offset, reset flag (float 0/1, broadcastable; None = no resets at all).
Element = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]


def reset_combine(earlier: Element, later: Element) -> Element:
    """The paper's ⊕: apply ``earlier`` then ``later``.

    ``(a_i, b_i, d_i) ⊕ (a_j, b_j, d_j)`` is the ordinary composition
    ``(a_j a_i, a_j b_i + b_j, d_i)`` when ``d_j = 0`` and ``(a_j, b_j, d_j)`` when ``d_j = 1``:
    a reset in the later element hides everything before it. The result's flag is
    ``max(d_i, d_j)`` (a reset anywhere in the span). Written with the flag as a 0/1 multiplier
    rather than a branch so it is elementwise, batched and differentiable.
    """
    a_i, b_i, d_i = earlier
    a_j, b_j, d_j = later
    if d_j is None:
        return a_j * a_i, a_j * b_i + b_j, d_i
    keep = 1 - d_j
    d = d_j if d_i is None else torch.maximum(d_i, d_j)
    return a_j * (keep * a_i + d_j), a_j * keep * b_i + b_j, d


def _apply(element: Element, h: torch.Tensor) -> torch.Tensor:
    """``b`` of ``(·, h, ·) ⊕ element``: the state after ``element`` when it receives ``h``.

    Combining a prefix with the next element only needs the prefix's ``b`` (its state), so the
    fill-in half of the scan uses this instead of the full ⊕.
    """
    a, b, d = element
    return a * h + b if d is None else a * (1 - d) * h + b


def _pad_identity(element: Element) -> Element:
    """Append one identity element ``(1, 0, 0)`` along time, to make the length even."""

    def pad(x: torch.Tensor | None, value: float) -> torch.Tensor | None:
        return None if x is None else torch.cat([x, torch.full_like(x[:, :1], value)], dim=1)

    a, b, d = element
    return pad(a, 1.0), pad(b, 0.0), pad(d, 0.0)  # type: ignore[return-value]


def _split_pairs(element: Element) -> tuple[Element, Element]:
    """Views of the elements at even and odd time positions (length must be even)."""
    parts = [(None, None) if x is None else x.unflatten(1, (-1, 2)).unbind(2) for x in element]
    even, odd = zip(*parts, strict=True)
    return even, odd  # type: ignore[return-value]


def _prefix_states(elements: Element) -> torch.Tensor:
    """``b`` of every prefix ``e_0 ⊕ ... ⊕ e_t``, i.e. all states from a zero initial state."""
    length = elements[1].shape[1]
    if length <= 1:
        return elements[1]
    even, odd = _split_pairs(_pad_identity(elements) if length % 2 else elements)
    odd_states = _prefix_states(reset_combine(even, odd))  # states at t = 1, 3, 5, ...
    # The state before t = 2i is the odd state at 2i - 1 (zero before t = 0).
    before_even = torch.cat([torch.zeros_like(odd_states[:, :1]), odd_states[:, :-1]], dim=1)
    even_states = _apply(even, before_even)  # states at t = 0, 2, 4, ...
    return torch.stack([even_states, odd_states], dim=2).flatten(1, 2)[:, :length]


def associative_scan(a: Tensor, b: Tensor, h0: Tensor | None, reset: Tensor | None) -> Tensor:
    """``linear_scan``'s contract (``linear.py``) in ``2 log2 L`` sequential steps."""
    a = torch.broadcast_to(a, b.shape)
    d = None if reset is None else expand_reset(reset, b)
    if h0 is not None:
        # Fold h0 into the first element so the scan can start from zero.
        first = _apply((a[:, :1], b[:, :1], None if d is None else d[:, :1]), h0.unsqueeze(1))
        b = torch.cat([first, b[:, 1:]], dim=1)
    return _prefix_states((a, b, d))
