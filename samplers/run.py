"""What every decoder does around its loop, written once: validate, seed, buffers, timing, stats.

A sampler opens a ``DecodeRun``, turns logits into distributions with ``distribution``,
records what it commits, reports progress, and ends with ``finish``, which makes the
run's one final host sync (the mean entropy, and whether every logit was finite).
"""

from __future__ import annotations

import time

import torch

from .distribution import TokenDistribution, token_distribution
from .layout import TokenLayout
from .protocols import SamplingState, StepCallback
from .result import SamplingResult, SamplingStats, entropy_mean_checked
from .rng import make_generator
from .settings import SamplerSettings


class DecodeRun:
    """The shared state of one sampling run over ``batch`` samples of ``total`` tokens.

    ``tokens``, ``entropy`` and ``temperature`` are (B, total + pad) buffers; ``pad`` spare
    columns let ragged samplers write past the end of a finished sample without a mask.
    """

    def __init__(self, settings: SamplerSettings, *, batch: int, total: int, vocab: int, seed: int,
                 device: torch.device, layout: TokenLayout, callback: StepCallback | None = None, pad: int = 0):
        settings.validate(vocab, batch)
        self.settings, self.batch, self.total, self.device = settings, batch, total, device
        self.layout, self.callback = layout, callback
        self.generator = make_generator(seed, device)
        self.base_temperature = settings.temperature_column(batch, device)
        self.greedy = settings.greedy_rows(batch, device)
        self.tokens = torch.zeros(batch, total + pad, dtype=torch.long, device=device)
        self.entropy = torch.zeros(batch, total + pad, dtype=torch.float32, device=device)
        self.temperature = torch.zeros(batch, total + pad, dtype=torch.float32, device=device)
        self.passes = 0
        self.started = time.perf_counter()

    def distribution(self, logits, cfg_active: bool | torch.Tensor) -> TokenDistribution:
        """The sampling distribution of logits (B, ..., V) under this run's settings."""
        return token_distribution(logits, self.settings, self.base_temperature, cfg_active, self.greedy)

    def record(self, column: int, tokens: torch.Tensor, dist: TokenDistribution) -> None:
        """Store one committed token per sample (B,) at ``column``, with its entropy and temperature."""
        self.tokens[:, column] = tokens
        self.entropy[:, column] = dist.model_entropy
        self.temperature[:, column] = dist.temperature

    def report(self, done: int, committed: int | list[int] | torch.Tensor | None = None,
               known: torch.Tensor | None = None) -> None:
        """Tell the callback (if any) how far the run is.

        Final tokens are a prefix of ``committed`` tokens (one count, or (B,) per sample), or
        the (B, total) mask ``known``.
        """
        if self.callback is None:
            return
        if known is None:
            columns = torch.arange(self.total, device=self.device)
            if isinstance(committed, int):
                limit = committed
            else:  # per sample: a host list (built only now, when someone listens) or a device tensor
                limit = torch.as_tensor(committed, device=self.device)[:, None]
            known = (columns < limit).expand(self.batch, self.total)
        self.callback(SamplingState(done, self.total, self.tokens[:, : self.total], known))

    def finish(self, **extra) -> SamplingResult:
        """Sync once, check every logit was finite, and package tokens, maps and stats."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        entropy = self.entropy[:, : self.total]
        stats = SamplingStats(forward_passes=self.passes, seconds=time.perf_counter() - self.started,
                              batch_size=self.batch, num_tokens=self.total, mean_entropy=entropy_mean_checked(entropy))
        stats.extra = extra
        return SamplingResult(self.tokens[:, : self.total], entropy, self.temperature[:, : self.total], stats,
                              self.layout)
