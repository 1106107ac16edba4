"""The Hugging Face transformers backend: batched, left-padded, KV-cached generation on CPU or GPU.

One forward pass over the left-padded contexts fills the KV cache, then one token per step for
every unfinished sequence. Each sequence has its own stop strings and budget: a finished sequence
leaves the batch (its rows are dropped from the cache) while the others go on, and its output ends
with the token that finished it. Position ids come from the attention mask, so left padding does
not shift positions: with greedy decoding a sequence gets the same tokens alone or in any batch.

Multi-turn rollouts send each context again with a few more tokens (the model's turn and the
inserted result). The backend keeps, until its next call, the KV cache of every sequence it
finished, and a request that extends one of them only runs its new tokens through the model: the
cached rows are laid out left-padded, the new tokens follow them (left-padded too), and the mask and
position ids skip the holes. Without this each turn would re-read the whole context (the prompt
alone is hundreds of tokens), which dominated the rollout's time.

Log-probs are those of the sampled tokens under the temperature-scaled distribution (before top-k /
top-p filtering), which is what a trainer recomputes from the same logits; greedy decoding reports
the unscaled distribution's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from research_rl.backends.base import GenerationOutput, GenerationRequest, SamplingParams
from research_rl.backends.stopping import StopWatcher


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    gen_cfg = getattr(model, "generation_config", None)
    for source in (
        getattr(gen_cfg, "eos_token_id", None),
        getattr(tokenizer, "eos_token_id", None),
    ):
        if isinstance(source, int):
            ids.add(source)
        elif isinstance(source, (list, tuple)):
            ids.update(int(i) for i in source)
    if not ids:
        raise ValueError(
            "neither the model's generation config nor the tokenizer names an eos token"
        )
    return ids


def filter_logits(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Set to -inf what top-k and nucleus (top-p) sampling exclude; rows are sequences."""
    if top_k > 0 and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        # Drop a token when the tokens before it already reach top_p (the first always stays).
        drop_sorted = (cum - sorted_logits.softmax(-1)) >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample_tokens(
    logits: torch.Tensor, sampling: SamplingParams, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Next token per row and its log-prob (see the module docstring)."""
    logits = logits.float()
    if sampling.greedy:
        tokens = logits.argmax(-1)
        return tokens, logits.log_softmax(-1).gather(-1, tokens[:, None]).squeeze(-1)
    scaled = logits / sampling.temperature
    probs = filter_logits(scaled, sampling.top_k, sampling.top_p).softmax(-1)
    # argmax(p / E) with E = -log(U) ~ Exp(1) draws from p, like multinomial, at a tenth of its
    # cost on CPU (torch's multinomial and exponential_ are slow there).
    noise = torch.rand(probs.shape, generator=generator, device=probs.device).log_().neg_()
    tokens = (probs / noise).argmax(-1)
    return tokens, scaled.log_softmax(-1).gather(-1, tokens[:, None]).squeeze(-1)


class _RoomyLayer(DynamicLayer):
    """A KV cache layer that writes new tokens into spare room reserved up front, instead of
    concatenating (which copies the whole cache at every step: most of a batched step's time on
    CPU). ``keys`` / ``values`` are views of the filled part."""

    def __init__(self, reserve: int) -> None:
        super().__init__()
        self.reserve = reserve
        self._k: torch.Tensor | None = None
        self._v: torch.Tensor | None = None
        self._len = 0

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        n = key_states.shape[-2]
        if self._k is None or self._v is None or self._len + n > self._k.shape[-2]:
            shape = (*key_states.shape[:2], self._len + n + self.reserve, key_states.shape[-1])
            k, v = key_states.new_empty(shape), value_states.new_empty(shape)
            if self._k is not None and self._v is not None:
                k[:, :, : self._len] = self._k[:, :, : self._len]
                v[:, :, : self._len] = self._v[:, :, : self._len]
            self._k, self._v = k, v
        self._k[:, :, self._len : self._len + n] = key_states
        self._v[:, :, self._len : self._len + n] = value_states
        self._len += n
        self.keys, self.values = self._k[:, :, : self._len], self._v[:, :, : self._len]
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self._k is not None and self._v is not None:
            self._k, self._v = self._k[indices], self._v[indices]
            self.keys, self.values = self._k[:, :, : self._len], self._v[:, :, : self._len]


def _roomy_cache(config: Any, reserve: int) -> DynamicCache | None:
    """A cache of ``_RoomyLayer``s, or None when the model has other layer kinds (sliding window,
    linear attention): those keep transformers' own cache."""
    cache = DynamicCache(config=config)
    if not cache.layers or any(type(layer) is not DynamicLayer for layer in cache.layers):
        return None
    cache.layers = [_RoomyLayer(reserve) for _ in cache.layers]
    return cache


_SHORT = 4  # new tokens of a row that only continues its previous call


def _merge(
    parts: list[tuple[Any, torch.Tensor, torch.Tensor, torch.Tensor]], reserve: int, config: Any
) -> tuple[Any, torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """Stack prefill results along the batch, left-padding the narrower caches (the padding is
    masked out). None when the caches are not whole-sequence ones."""
    cache = _roomy_cache(config, reserve)
    if cache is None:
        return None
    width = max(mask.shape[1] for _, _, mask, _ in parts)

    def pad(t: torch.Tensor, dim: int) -> torch.Tensor:
        missing = width - t.shape[dim]
        if not missing:
            return t
        shape = list(t.shape)
        shape[dim] = missing
        return torch.cat([t.new_zeros(shape), t], dim=dim)

    for layer in range(len(cache.layers)):
        k = torch.cat([pad(c.layers[layer].keys, 2) for c, _, _, _ in parts])
        v = torch.cat([pad(c.layers[layer].values, 2) for c, _, _, _ in parts])
        cache.update(k, v, layer)
    mask = torch.cat([pad(m, 1) for _, _, m, _ in parts])
    logits = torch.cat([lg for _, lg, _, _ in parts])
    next_pos = torch.cat([p for _, _, _, p in parts])
    return cache, logits, mask, next_pos


@dataclass
class _Prefix:
    """The KV cache of one finished sequence: ``ids`` are the tokens it covers."""

    ids: list[int]
    layers: list[tuple[torch.Tensor, torch.Tensor]]  # per layer (kv_heads, len, head_dim) K and V


class HFBackend:
    """A transformers causal LM behind the generation protocol (``backends.base``)."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        max_batch_size: int = 64,
        reuse_prefix: bool = True,
        max_kept_bytes: int = 2 << 30,
    ) -> None:
        """``reuse_prefix``: keep finished sequences' KV caches for the next call (see above), at
        most ``max_kept_bytes`` of them (a 7B model's cache is about 0.1 MB a token); sequences
        past the budget are run again from their start next time."""
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch_size = max_batch_size
        # Kept caches need whole-sequence layers: a sliding-window layer has dropped the start.
        self.reuse_prefix = reuse_prefix and _roomy_cache(model.config, 0) is not None
        self.max_kept_bytes = max_kept_bytes
        self._prefixes: list[_Prefix] = []  # from the previous call only
        self._kept_bytes = 0
        self.eos_ids = _eos_ids(model, tokenizer)
        pad = getattr(tokenizer, "pad_token_id", None)
        self.pad_id: int = pad if pad is not None else min(self.eos_ids)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def generate(
        self, requests: list[GenerationRequest], sampling: SamplingParams
    ) -> list[GenerationOutput]:
        generator = None
        if not sampling.greedy and sampling.seed is not None:
            generator = torch.Generator(device=self.device).manual_seed(sampling.seed)
        previous = self._prefixes
        self.clear_prefix_cache()
        prefixes = [self._match(r.prompt_ids, previous) for r in requests]
        # Similar lengths share a chunk, so little compute goes to padding.
        order = sorted(range(len(requests)), key=lambda i: len(requests[i].prompt_ids))
        outputs: list[GenerationOutput | None] = [None] * len(requests)
        for start in range(0, len(order), self.max_batch_size):
            chunk = order[start : start + self.max_batch_size]
            results = self._generate_batch(
                [requests[i] for i in chunk], [prefixes[i] for i in chunk], sampling, generator
            )
            for i, out in zip(chunk, results, strict=True):
                outputs[i] = out
        return outputs  # type: ignore[return-value]

    def clear_prefix_cache(self) -> None:
        """Forget the kept KV caches: they are only valid for the weights that computed them.
        ``RolloutEngine.run`` calls this when it starts and when it ends."""
        self._prefixes, self._kept_bytes = [], 0

    @staticmethod
    def _match(context: list[int], prefixes: list[_Prefix]) -> _Prefix | None:
        """The longest kept cache covering a proper prefix of ``context`` (one token at least
        must remain to run, its logits give the next token)."""
        best = None
        for p in prefixes:
            n = len(p.ids)
            if n < len(context) and (best is None or n > len(best.ids)) and context[:n] == p.ids:
                best = p
        return best

    def _prefill(
        self,
        requests: Sequence[GenerationRequest],
        prefixes: Sequence[_Prefix | None],
        reserve: int,
    ) -> tuple[Any, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run every context not yet cached; returns the cache, the last logits, the attention
        mask and each row's next position.

        Identical requests (a GRPO group shares its prompt) run once and their cache rows are
        copied: the prompt of a group of 5 costs one forward pass, not five."""
        keys = [(id(p), tuple(r.prompt_ids)) for r, p in zip(requests, prefixes, strict=True)]
        first: dict[tuple[int, tuple[int, ...]], int] = {}
        for k in keys:
            first.setdefault(k, len(first))
        if len(first) < len(keys):
            unique = list(dict.fromkeys(keys))
            pick = [keys.index(k) for k in unique]
            cache, logits, mask, next_pos = self._prefill(
                [requests[i] for i in pick], [prefixes[i] for i in pick], reserve
            )
            expand = torch.tensor([first[k] for k in keys], device=logits.device)
            cache.batch_select_indices(expand)
            return cache, logits[expand], mask[expand], next_pos[expand]
        cached = [len(p.ids) if p else 0 for p in prefixes]
        todo = [r.prompt_ids[c:] for r, c in zip(requests, cached, strict=True)]
        # Rows that only continue (a token or so) would be padded to the inserted results' length:
        # run them apart and merge the caches.
        short = [i for i, t in enumerate(todo) if len(t) <= _SHORT]
        if short and len(short) < len(todo) and max(map(len, todo)) > 4 * _SHORT:
            long = [i for i in range(len(todo)) if len(todo[i]) > _SHORT]
            parts = [
                self._prefill([requests[i] for i in group], [prefixes[i] for i in group], reserve)
                for group in (short, long)
            ]
            merged = _merge(parts, reserve, self.model.config)
            if merged is not None:
                order = short + long
                back = torch.empty(len(order), dtype=torch.long, device=self.device)
                back[torch.tensor(order, device=self.device)] = torch.arange(
                    len(order), device=self.device
                )
                cache, logits, mask, next_pos = merged
                cache.batch_select_indices(back)
                return cache, logits[back], mask[back], next_pos[back]
        device = self.device
        width_c, width_n = max(cached), max(map(len, todo))
        rows = len(requests)
        ids = torch.full((rows, width_n), self.pad_id, dtype=torch.long)
        mask = torch.zeros((rows, width_c + width_n), dtype=torch.long)
        for row, (c, t) in enumerate(zip(cached, todo, strict=True)):
            ids[row, width_n - len(t) :] = torch.tensor(t, dtype=torch.long)
            mask[row, width_c - c : width_c] = 1
            mask[row, width_c + width_n - len(t) :] = 1
        ids, mask = ids.to(device), mask.to(device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, width_c:]
        cache = _roomy_cache(self.model.config, reserve)
        if width_c:
            ref = next(p for p in prefixes if p is not None).layers
            data = []
            for layer, (k_ref, v_ref) in enumerate(ref):
                k = k_ref.new_zeros((rows, k_ref.shape[0], width_c, k_ref.shape[2]))
                v = v_ref.new_zeros((rows, v_ref.shape[0], width_c, v_ref.shape[2]))
                for row, (p, c) in enumerate(zip(prefixes, cached, strict=True)):
                    if p is not None:
                        k[row, :, width_c - c :] = p.layers[layer][0]
                        v[row, :, width_c - c :] = p.layers[layer][1]
                data.append((k, v))
            if cache is None:
                cache = DynamicCache(data, config=self.model.config)
            else:
                for layer, (k, v) in enumerate(data):
                    cache.update(k, v, layer)
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        return out.past_key_values, out.logits[:, -1, :], mask, positions[:, -1] + 1

    def _keep_prefix(self, cache: Any, row: int, mask: torch.Tensor, ids: list[int]) -> None:
        size = sum(
            2 * layer.keys[row].numel() * layer.keys.element_size() for layer in cache.layers
        )  # an upper bound: the row's padding included
        if self._kept_bytes + size > self.max_kept_bytes:
            return
        real = mask[row].bool()
        layers = [(layer.keys[row][:, real], layer.values[row][:, real]) for layer in cache.layers]
        self._prefixes.append(_Prefix(ids, layers))
        self._kept_bytes += size

    @torch.inference_mode()
    def _generate_batch(
        self,
        requests: Sequence[GenerationRequest],
        prefixes: Sequence[_Prefix | None],
        sampling: SamplingParams,
        generator: torch.Generator | None,
    ) -> list[GenerationOutput]:
        n = len(requests)
        outputs: list[GenerationOutput | None] = [None] * n
        for i, r in enumerate(requests):
            if not r.prompt_ids:
                raise ValueError(f"request {i} has an empty context")
            if r.max_new_tokens <= 0:
                outputs[i] = GenerationOutput([], "length", None, [])
        rows = [i for i in range(n) if outputs[i] is None]  # batch row -> request index
        if not rows:
            return outputs  # type: ignore[return-value]
        reserve = max(requests[i].max_new_tokens for i in rows)
        cache, logits, mask, next_pos = self._prefill(
            [requests[i] for i in rows], [prefixes[i] for i in rows], reserve
        )
        device = self.device

        new_ids: list[list[int]] = [[] for _ in range(n)]
        new_lps: list[list[float]] = [[] for _ in range(n)]
        watchers = [StopWatcher(self.tokenizer, r.stop) for r in requests]
        while True:
            tokens, lps = sample_tokens(logits, sampling, generator)
            keep: list[int] = []
            for row, (tok, lp) in enumerate(zip(tokens.tolist(), lps.tolist(), strict=True)):
                i = rows[row]
                new_ids[i].append(tok)
                new_lps[i].append(lp)
                if tok in self.eos_ids:
                    outputs[i] = GenerationOutput(new_ids[i], "eos", None, new_lps[i])
                elif (stop := watchers[i].check(new_ids[i])) is not None:
                    outputs[i] = GenerationOutput(new_ids[i], "stop", stop, new_lps[i])
                elif len(new_ids[i]) >= requests[i].max_new_tokens:
                    outputs[i] = GenerationOutput(new_ids[i], "length", None, new_lps[i])
                else:
                    keep.append(row)
                    continue
                if self.reuse_prefix:  # the cache covers all but the token just sampled
                    self._keep_prefix(cache, row, mask, requests[i].prompt_ids + new_ids[i][:-1])
            if not keep:
                return outputs  # type: ignore[return-value]
            if len(keep) < len(rows):  # finished sequences leave the batch and the cache
                index = torch.tensor(keep, device=device)
                cache.batch_select_indices(index)
                tokens, mask, next_pos = tokens[index], mask[index], next_pos[index]
                rows = [rows[r] for r in keep]
            mask = torch.cat([mask, mask.new_ones((len(rows), 1))], dim=-1)
            out = self.model(
                input_ids=tokens[:, None],
                attention_mask=mask,
                position_ids=next_pos[:, None],
                past_key_values=cache,
                use_cache=True,
            )
            logits = out.logits[:, -1, :]
            next_pos = next_pos + 1
