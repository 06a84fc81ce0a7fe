"""``inject_adapters``: replace the targeted ``nn.Linear`` layers of a trunk in place."""

from __future__ import annotations

import contextlib
import contextvars
import math
import re
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import nn

from lightning_pinn.adapters._layer import AdapterForm, AdapterLinear

__all__ = [
    "WIDE",
    "Target",
    "check_num_losses",
    "inject_adapters",
    "restoring_layers",
    "select_layers",
]

Target = None | str | Sequence[str] | Callable[[str, nn.Module], bool]
"""Which layers get adapters: None (every trainable ``nn.Linear``), ``"wide"`` (the trainable
layers with ``min(in, out) >= rank``, or every trainable layer where none is that wide),
``"last:n"`` (the last n trainable layers with ``min(in, out) >= rank``), a regex searched in
the layer's qualified name, a sequence of exact names, or a predicate
``(name, module) -> bool``."""

WIDE = "wide"
"""The target of :class:`~lightning_pinn.strategies.AdapterStrategy` by default: the layers
wide enough for the rank (so not a scalar output head or a 2-input first layer at rank 4)."""

_LAST = re.compile(r"^last:(\d+)$")

_RESTORING = contextvars.ContextVar("restoring_layers", default=False)


@contextlib.contextmanager
def restoring_layers() -> Iterator[None]:
    """Adapters rebuilt on the layers a checkpoint names: they were chosen by the run that
    saved it (any rank was fine for its target), so the rank-versus-width check of an explicit
    target does not apply to the names."""
    token = _RESTORING.set(True)
    try:
        yield
    finally:
        _RESTORING.reset(token)


def _last_count(target: Target) -> int | None:
    """n for a ``"last:n"`` target (n >= 1), else None."""
    if not isinstance(target, str):
        return None
    found = _LAST.match(target)
    if found is None:
        return None
    count = int(found.group(1))
    if count < 1:
        raise ValueError(f"target={target!r}: the number of last layers must be >= 1")
    return count


def check_num_losses(num_losses: int) -> int:
    """Validate K for adapters (one adapter per loss, so at least two losses)."""
    if isinstance(num_losses, bool) or not isinstance(num_losses, int) or num_losses < 2:
        raise ValueError(
            f"num_losses must be an integer >= 2 (one adapter per loss), got {num_losses!r}; "
            "with a single loss, train the trunk without adapters"
        )
    return num_losses


def _matcher(target: Target) -> Callable[[str, nn.Module], bool]:
    if target is None:
        return lambda name, module: True
    if isinstance(target, str):
        pattern = re.compile(target)
        return lambda name, module: pattern.search(name) is not None
    if callable(target):
        return target
    if isinstance(target, Sequence) and all(isinstance(t, str) for t in target):
        names = set(target)
        return lambda name, module: name in names
    raise TypeError(
        "target must be None, a regex string, a sequence of layer names or a predicate "
        f"(name, module) -> bool, got {target!r}"
    )


def _weights_read_directly(trunk: nn.Module) -> set[int]:
    """The ``nn.Linear`` layers whose parent uses their weight without calling them: the
    ``out_proj`` of ``nn.MultiheadAttention`` (an adapter there would never act)."""
    return {
        id(m)
        for parent in trunk.modules()
        if isinstance(parent, nn.MultiheadAttention)
        for m in parent.modules()
        if isinstance(m, nn.Linear)
    }


def _replace_everywhere(root: nn.Module, old: nn.Module, new: nn.Module) -> None:
    """Point every reference to ``old`` below ``root`` (shared layers included) at ``new``."""
    parents = [p for _, p in root.named_modules(remove_duplicate=False)]
    for parent in parents:
        if isinstance(parent, AdapterLinear):
            continue
        for child_name, child in list(parent._modules.items()):  # tied layers too
            if child is old:
                setattr(parent, child_name, new)


def select_layers(
    trunk: nn.Module,
    num_losses: int,
    rank: int = 4,
    alpha: float | None = None,
    target: Target = None,
    form: AdapterForm = "linear",
) -> list[tuple[str, nn.Linear]]:
    """The ``(name, layer)`` pairs :func:`inject_adapters` would adapt; changes nothing.

    Raises:
        ValueError, TypeError: as :func:`inject_adapters`.
    """
    check_num_losses(num_losses)
    if isinstance(rank, bool) or not isinstance(rank, int) or rank <= 0:
        raise ValueError(f"rank must be a positive integer, got {rank!r}; try rank=4")
    if alpha is None:
        alpha = float(rank)
    if not (alpha > 0 and math.isfinite(alpha)):
        raise ValueError(
            f"alpha must be positive and finite (or None for alpha = rank), got {alpha!r}"
        )
    existing = [n or "<root>" for n, m in trunk.named_modules() if isinstance(m, AdapterLinear)]
    if existing:
        raise ValueError(
            f"the trunk already holds adapters (layers {existing}); wrap the plain trunk once, "
            "or call merged() first to fold the existing adapters in"
        )
    last = _last_count(target)
    by_width = last is not None or target == WIDE
    match = _matcher(None if by_width else target)
    unused = _weights_read_directly(trunk)
    chosen = [
        (name, m)
        for name, m in trunk.named_modules()
        if isinstance(m, nn.Linear) and match(name, m)
    ]
    by_name = isinstance(target, Sequence) and not isinstance(target, str)
    if by_name:  # exact names: each must be an nn.Linear of the trunk
        linear = [n for n, m in trunk.named_modules() if isinstance(m, nn.Linear)]
        missing = [n for n in target if n not in linear]
        if missing:
            raise ValueError(
                f"target names {missing}, which are not nn.Linear layers of the trunk; its "
                f"nn.Linear layers are {linear} (names as in trunk.named_modules())"
            )
    named = [name for name, m in chosen if id(m) in unused]
    if named and by_name:
        raise ValueError(
            f"target={target!r} names {named}, an nn.Linear inside nn.MultiheadAttention, "
            "which reads the layer's weight directly and never calls it: an adapter there "
            "would be ignored by the forward (and merged() would not match the model). "
            "Target other layers"
        )
    chosen = [(name, m) for name, m in chosen if id(m) not in unused]
    if target is None or by_width:  # the trainable layers (a frozen one keeps its function)
        chosen = [(n, m) for n, m in chosen if m.weight.requires_grad]
    if by_width:
        wide = [(n, m) for n, m in chosen if rank <= min(m.in_features, m.out_features)]
        chosen = wide if wide or last is not None else chosen
    if last is not None:
        chosen = chosen[-last:]
    if not chosen:
        types = sorted({type(m).__name__ for m in trunk.modules()})
        widths = [
            (n or "<root>", m.in_features, m.out_features, bool(m.weight.requires_grad))
            for n, m in trunk.named_modules()
            if isinstance(m, nn.Linear)
        ]
        raise ValueError(
            f"no nn.Linear layer matches target={target!r} with rank={rank}; the trunk contains "
            f"module types {types} and nn.Linear layers (name, in, out, trainable) {widths}. "
            "Adapters are injected into nn.Linear layers only (by default every trainable "
            "one; 'last:n' only those with rank <= min(in, out)): pass target=None for every "
            "trainable layer, lower the rank, or pass a regex/names/predicate matching the "
            "names in trunk.named_modules()"
        )
    widest = max(min(m.in_features, m.out_features) for _, m in chosen)
    explicit = target is not None and not by_width and not _RESTORING.get()  # user's choice
    if explicit and form == "linear" and rank > widest:
        layers = [(n or "<root>", m.in_features, m.out_features) for n, m in chosen]
        raise ValueError(
            f"rank={rank} is larger than every layer target={target!r} selects (name, in, "
            f"out) {layers}: a linear update B_k A_k there has rank at most min(in, out) = "
            f"{widest}, so the extra rank would be dead weight. Lower the rank to at most "
            f"{widest}, or target wider layers (target=None adapts every layer at any rank)"
        )
    return chosen


def inject_adapters(
    trunk: nn.Module,
    num_losses: int,
    rank: int = 4,
    alpha: float | None = None,
    target: Target = None,
    seed: int = 0,
    form: AdapterForm = "linear",
) -> tuple[nn.Module, list[str]]:
    """Replace the targeted ``nn.Linear`` layers of ``trunk`` by :class:`AdapterLinear`.

    The trunk is modified in place and its own parameters stay the same tensor objects (so an
    optimizer's state for them survives). Layers are visited in ``named_modules()`` order and
    the A factors drawn from one CPU generator seeded with ``seed``: the initialisation is
    identical on every DDP rank whatever the global RNG state.

    Args:
        trunk: any ``nn.Module`` holding ``nn.Linear`` layers (or an ``nn.Linear`` itself).
        num_losses: K >= 2, one adapter per loss.
        rank: r >= 1.
        alpha: scaling numerator (``scaling = alpha / rank``); None means ``alpha = rank``.
        target: which layers (see :data:`Target`); None adapts every trainable ``nn.Linear``
            (layers the user froze keep their function, and the ``out_proj`` of an
            ``nn.MultiheadAttention``, which the attention never calls, is left out, as
            from a regex or predicate, and naming it raises);
            ``"wide"`` those with ``min(in, out) >= rank`` (every trainable one where none
            is that wide); ``"last:n"`` the last n wide ones (in ``named_modules()``
            order); an explicit target may name any layer, frozen ones included. A rank
            above ``min(in, out)`` of a layer (a scalar head) is allowed: its update
            ``B_k A_k`` then has rank ``min(in, out)``. Only an explicit target (regex,
            names or predicate) whose every layer is narrower than a linear rank raises.
        seed: seed of the A factors.
        form: ``"linear"`` (low-rank update of W) or ``"nonlinear"`` (a tanh branch of rank r).

    Returns:
        ``(root, names)``: the trunk (a new ``AdapterLinear`` if ``trunk`` itself was an
        ``nn.Linear``) and the qualified names of the adapted layers.

    Raises:
        ValueError: bad ``num_losses``, ``rank`` or ``alpha`` (not positive and finite), the
            trunk already holds adapters, no layer matches ``target`` (the message lists
            the module types found), a linear ``rank`` above ``min(in, out)`` of every
            layer an explicit ``target`` names, or an explicit ``target`` names a layer
            inside an ``nn.MultiheadAttention``.
        TypeError: ``target`` of an unsupported type.
    """
    chosen = select_layers(trunk, num_losses, rank, alpha, target, form)
    alpha = float(rank) if alpha is None else alpha
    generator = torch.Generator().manual_seed(int(seed))
    root = trunk
    for _, m in chosen:
        new = AdapterLinear(m, num_losses, rank, float(alpha), generator=generator, form=form)
        if m is trunk:
            root = new
        else:
            _replace_everywhere(trunk, m, new)
    return root, [name for name, _ in chosen]
