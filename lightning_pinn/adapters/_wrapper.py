"""``PerLossAdapter``: any trunk with K loss-indexed low-rank adapters (DESIGN §5)."""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Iterator
from typing import Any, Literal

import torch
from torch import nn
from torch.nn.utils import parametrize

from lightning_pinn._values import check_integer
from lightning_pinn.adapters._inject import Target, check_num_losses, inject_adapters
from lightning_pinn.adapters._layer import AdapterForm, AdapterLinear, Selection

__all__ = ["MODES", "PREDICTIONS", "Mode", "PerLossAdapter", "Prediction", "check_predict_with"]

Mode = Literal["summed", "per_loss"]
MODES: tuple[str, ...] = ("summed", "per_loss")
Prediction = Literal["residual", "mean", "trunk"] | int
PREDICTIONS: tuple[str, ...] = ("residual", "mean", "trunk")


def check_predict_with(predict_with: object, num_losses: int) -> Selection:
    """The layer selection of ``predict_with``: ``"residual"`` is adapter 0 (the first loss).

    Raises:
        ValueError: not one of :data:`PREDICTIONS` nor an adapter index in ``[0, K)``.
    """
    if predict_with == "residual":
        return 0
    if predict_with in ("mean", "trunk"):
        return predict_with  # type: ignore[return-value]
    is_index = isinstance(predict_with, int) and not isinstance(predict_with, bool)
    if is_index and 0 <= predict_with < num_losses:  # type: ignore[operator]
        return predict_with  # type: ignore[return-value]
    raise ValueError(
        f"predict_with must be one of {PREDICTIONS} or an adapter index in [0, {num_losses}), "
        f"got {predict_with!r}"
    )


class PerLossAdapter(nn.Module):
    """Wrap a trunk and inject K rank-r adapters into its ``nn.Linear`` layers.

    Every targeted layer's effective weight becomes ``W + (alpha / r) Σ_k B_k A_k`` with
    ``B_k = 0`` at creation, so wrapping leaves the function unchanged (it can happen
    mid-training). Two designs (docs/concepts.md):

    - ``mode="summed"`` (default): all adapters are active in every forward, one function
      ``u``; which loss moves which adapter is the training loop's business
      (``adapter_parameters(k)``).
    - ``mode="per_loss"``: loss k is evaluated through the trunk and adapter k only,
      ``u_k = f(x; W + s B_k A_k)``, inside :meth:`scope` ``(k)``; a forward outside any scope
      (validation, plots) evaluates the prediction ``predict_with``: ``"residual"`` (adapter 0,
      the first loss), ``"mean"`` (the mean of the adapters), ``"trunk"`` or an index.

    The trunk is modified in place (its ``nn.Linear`` layers are replaced by
    :class:`AdapterLinear` wrappers holding the original layers), so its parameters remain
    the same tensor objects and an optimizer's state for them survives the wrap. Works for
    ``nn.Sequential``, nested modules, ``ModuleList``/``ModuleDict``, custom modules with
    ``nn.Linear`` attributes, residual blocks and shared (tied) layers.

    Args:
        trunk: the network (any ``nn.Module`` mapping ``[N, d]`` to ``[N, m]``).
        num_losses: K >= 2.
        rank: adapter rank r >= 1 (on a layer with ``min(in, out) < r``, such as a scalar
            output head, the update ``B_k A_k`` has rank ``min(in, out)``).
        alpha: scaling numerator, ``scaling = alpha / r``; None means ``alpha = r``.
        target: None (every trainable ``nn.Linear``, the output head included; layers whose
            weight the user froze with ``requires_grad_(False)`` keep their function), a
            regex searched in the layer's qualified name (``re.search``), a sequence of exact
            names, or a predicate ``(name, module) -> bool`` (an explicit target may name
            frozen layers). ``"wide"`` adapts the trainable layers with
            ``min(in, out) >= rank`` (every trainable one where none is that wide; the
            default of the ``adapters`` strategy), ``"last:n"`` the last n of those.
        seed: seed of the A factors (identical on every DDP rank, whatever the global RNG).
        mode: ``"summed"`` or ``"per_loss"`` (see above).
        predict_with: the prediction of a forward outside any scope in ``"per_loss"`` mode.
        form: ``"linear"`` (``W + s B_k A_k``) or ``"nonlinear"`` (a branch
            ``s · tanh(x A_kᵀ) B_kᵀ`` per loss, which :meth:`merged` cannot fold).

    Raises:
        ValueError: ``num_losses < 2``; bad rank (the message names the layer) or alpha
            (not positive and finite); no layer matches ``target`` (the message lists the
            module types found); the trunk is already wrapped; unknown ``mode``, ``form`` or
            ``predict_with``.

    Example:
        >>> def trunk():
        ...     return nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(),
        ...                          nn.Linear(16, 1))
        >>> model = PerLossAdapter(trunk(), num_losses=3, rank=2)
        >>> model.adapted_layer_names
        ['0', '2', '4']
        >>> len(model.adapter_parameters(0))  # A_0, B_0 of each adapted layer
        6
        >>> PerLossAdapter(trunk(), 3, rank=2, target="wide").adapted_layer_names  # not 16 -> 1
        ['0', '2']
    """

    def __init__(
        self,
        trunk: nn.Module,
        num_losses: int,
        rank: int = 4,
        alpha: float | None = None,
        target: Target = None,
        seed: int = 0,
        mode: Mode = "summed",
        predict_with: Prediction = "residual",
        form: AdapterForm = "linear",
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if form not in ("linear", "nonlinear"):
            raise ValueError(f"form must be one of ('linear', 'nonlinear'), got {form!r}")
        if isinstance(trunk, PerLossAdapter):
            raise ValueError(
                "trunk is already a PerLossAdapter; wrap the plain trunk once (use "
                "model.trunk, or model.merged() to fold the adapters in first)"
            )
        if not isinstance(trunk, nn.Module):
            raise TypeError(f"trunk must be an nn.Module, got {type(trunk).__name__}")
        check_num_losses(num_losses)
        seed = check_integer("seed", seed)  # ints, NumPy and 0-d torch integers
        prediction = check_predict_with(predict_with, num_losses)
        root, _ = inject_adapters(
            trunk, num_losses, rank=rank, alpha=alpha, target=target, seed=seed, form=form
        )
        self.trunk = root
        self.num_losses = num_losses
        self.rank = rank
        self.alpha = float(rank if alpha is None else alpha)
        self.scaling = self.alpha / rank
        self.seed = seed
        self.mode: str = mode
        self.form: str = form
        self.predict_with = predict_with
        self._prediction: Selection = prediction
        self._scope: Selection = None  # the adapter of the loss being evaluated (per-loss)
        self._forced = False  # a scope that nested scopes cannot change (the fallback)
        self.untagged_calls = 0  # per-loss forwards outside any scope, since the last reset
        self.untagged = False  # set by the module when losses() was found not to tag
        self._watch_calls = True  # the first forward reports adapted layers it never calls
        self._select(self._default())

    def _default(self) -> Selection:
        return self._prediction if self.mode == "per_loss" else None

    def _select(self, selection: Selection) -> None:
        for _, layer in self._adapter_layers():
            layer.active = selection

    def set_predict_with(self, predict_with: Prediction) -> None:
        """Change the prediction of forwards outside any scope (``"per_loss"`` mode).

        Raises:
            ValueError: not one of :data:`PREDICTIONS` nor an adapter index.
        """
        self._prediction = check_predict_with(predict_with, self.num_losses)
        self.predict_with = predict_with
        if self._scope is None:
            self._select(self._default())

    @contextlib.contextmanager
    def scope(self, k: int, *, force: bool = False) -> Iterator[None]:
        """Evaluate every forward inside through the trunk and adapter ``k`` only.

        A no-op in ``"summed"`` mode. Inside a ``force=True`` scope, nested scopes change
        nothing (the module's exact fallback for a ``losses()`` that does not tag).

        Raises:
            IndexError: ``k`` outside ``[0, num_losses)``.
        """
        if not 0 <= k < self.num_losses:
            raise IndexError(f"adapter index {k} out of range for num_losses={self.num_losses}")
        if self.mode != "per_loss" or self._forced:
            yield
            return
        previous = self._scope
        self._scope, self._forced = k, force
        self._select(k)
        try:
            yield
        finally:
            self._scope, self._forced = previous, False
            self._select(self._default() if previous is None else previous)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Evaluate the trunk (with adapters); same signature as the trunk."""
        if self.mode == "per_loss" and self._scope is None:
            self.untagged_calls += 1
        if self._watch_calls:
            return self._first_forward(*args, **kwargs)
        return self.trunk(*args, **kwargs)

    def _first_forward(self, *args: Any, **kwargs: Any) -> Any:
        """The trunk's forward, warning once about adapted layers that it never called.

        An adapter on a layer the trunk's ``forward`` bypasses never acts (its gradient is
        zero), so the run carries dead parameters and :attr:`adapted_layer_names` overstates
        what adapts. Hooks watch this one forward only; later forwards run hook-free.
        """
        called: set[int] = set()
        layers = self._adapter_layers()
        handles = [
            layer.register_forward_hook(lambda m, i, o: called.add(id(m))) for _, layer in layers
        ]
        try:
            out = self.trunk(*args, **kwargs)
        finally:
            for handle in handles:
                handle.remove()
        self._watch_calls = False
        unused = [name for name, layer in layers if id(layer) not in called]
        if unused:
            warnings.warn(
                f"PerLossAdapter: the trunk's forward never called the adapted layer(s) "
                f"{unused}, so their adapters never act (zero gradient). Leave them out with "
                f"target= (e.g. a list of the layers the forward uses: "
                f"{[n for n, layer in layers if id(layer) in called]})",
                UserWarning,
                stacklevel=3,
            )
        return out

    def _adapter_layers(self) -> list[tuple[str, AdapterLinear]]:
        return [(n, m) for n, m in self.trunk.named_modules() if isinstance(m, AdapterLinear)]

    @property
    def adapted_layer_names(self) -> list[str]:
        """Qualified names (in the trunk) of the layers holding adapters, in order."""
        return [name for name, _ in self._adapter_layers()]

    def adapter_parameters(self, k: int) -> list[nn.Parameter]:
        """Parameters of adapter ``k``: ``A_k``, ``B_k`` of every adapted layer, in order.

        Raises:
            IndexError: ``k`` outside ``[0, num_losses)``.
        """
        if not 0 <= k < self.num_losses:
            raise IndexError(f"adapter index {k} out of range for num_losses={self.num_losses}")
        return [p for _, layer in self._adapter_layers() for p in layer.adapter_parameters(k)]

    def shared_parameters(self) -> list[nn.Parameter]:
        """Every trunk parameter that is not an adapter factor, in ``named_parameters`` order."""
        adapters = {id(p) for k in range(self.num_losses) for p in self.adapter_parameters(k)}
        return [p for p in self.trunk.parameters() if id(p) not in adapters]

    def merged(self, which: Prediction | None = None) -> nn.Module:
        """A deep copy of the plain trunk with adapters folded into the weights.

        ``which`` chooses the function: None is this module's own (every adapter summed in
        ``"summed"`` mode, ``predict_with`` in ``"per_loss"`` mode); an index k folds adapter k
        only (``W + s B_k A_k``: trunk + adapter k at no extra inference cost); ``"residual"``,
        ``"mean"`` and ``"trunk"`` as ``predict_with``. Every :class:`AdapterLinear` becomes an
        ``nn.Linear``; outputs equal this module's (in that selection) to floating-point
        tolerance. A layer whose weight is parametrised (e.g. by random weight
        factorisation) becomes a plain ``nn.Linear`` holding the folded effective weight.

        Raises:
            ValueError: nonlinear adapter branches (they cannot be folded into a weight;
                ``merged("trunk")`` still works, dropping them), or a bad ``which``.
        """
        selection = self._default() if which is None else check_predict_with(which, self.num_losses)
        if self.form != "linear" and selection != "trunk":
            raise ValueError(
                "nonlinear adapter branches cannot be folded into the weights; keep the "
                "PerLossAdapter for inference (its forward is the prediction), or use "
                "merged('trunk') for the trunk without adapters"
            )
        trunk = copy.deepcopy(self.trunk)
        layers = {id(m): m for m in trunk.modules() if isinstance(m, AdapterLinear)}
        for layer in layers.values():
            layer.active = selection
        if isinstance(trunk, AdapterLinear):
            return _fold(trunk)
        plain = {key: _fold(m) for key, m in layers.items()}
        parents = [p for _, p in trunk.named_modules(remove_duplicate=False)]
        for parent in parents:
            for child_name, child in list(parent._modules.items()):  # tied layers too
                if id(child) in plain:
                    setattr(parent, child_name, plain[id(child)])
        return trunk

    def extra_repr(self) -> str:
        design = (
            "" if self.mode == "summed" else f", mode=per_loss, predict_with={self.predict_with!r}"
        )
        form = "" if self.form == "linear" else f", form={self.form}"
        return (
            f"num_losses={self.num_losses}, rank={self.rank}, alpha={self.alpha:g}, "
            f"layers={self.adapted_layer_names}{design}{form}"
        )


def _fold(layer: AdapterLinear) -> nn.Linear:
    plain = layer.base_layer
    if layer.active == "trunk":  # nothing to fold (any form)
        return plain
    weight = layer.merged_weight()  # (out, in)
    if parametrize.is_parametrized(plain, "weight"):
        # A parametrised weight (e.g. RWF) is computed from its originals: a copy into it is
        # lost. Bake the folded weight into a fresh plain layer instead (skip_init: no RNG
        # draw; remove_parametrizations would edit the class the deep copy shares).
        folded = torch.nn.utils.skip_init(
            nn.Linear,
            plain.in_features,
            plain.out_features,
            bias=plain.bias is not None,
            device=weight.device,
            dtype=weight.dtype,
        )
        with torch.no_grad():
            folded.weight.copy_(weight)
            if plain.bias is not None:
                folded.bias.copy_(plain.bias)
        return folded
    with torch.no_grad():
        plain.weight.copy_(weight)
    return plain
