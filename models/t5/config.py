"""T5 encoder configuration: from a Hugging Face config.json, or read off the weights' shapes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

import torch

from ...errors import CheckpointError

# Feed-forward activations of the T5 family (Hugging Face spells the tanh GELU "gelu_new").
ACTIVATIONS = ("gelu_tanh", "relu")


@dataclass(frozen=True)
class T5Config:
    """Shape of a T5 encoder. The defaults are google/flan-t5-xl, the encoder LlamaGen t2i was trained with."""

    vocab_size: int = 32128
    d_model: int = 2048
    d_kv: int = 64
    num_heads: int = 32
    d_ff: int = 5120
    num_layers: int = 24
    gated: bool = True  # FLAN-T5 / T5 v1.1: wo(act(wi_0 x) * wi_1 x); original T5: wo(relu(wi x))
    activation: str = "gelu_tanh"
    relative_buckets: int = 32
    relative_max_distance: int = 128
    eps: float = 1e-6
    name: str = "flan-t5-xl"

    @property
    def inner_dim(self) -> int:
        return self.d_kv * self.num_heads

    @classmethod
    def from_hf(cls, config: Mapping) -> "T5Config":
        """From a Hugging Face T5 ``config.json`` dict."""
        proj = str(config.get("feed_forward_proj", "relu"))
        gated = proj.startswith("gated-")
        act = proj.split("-")[-1]
        return cls(vocab_size=int(config["vocab_size"]), d_model=int(config["d_model"]), d_kv=int(config["d_kv"]),
                   num_heads=int(config["num_heads"]), d_ff=int(config["d_ff"]), num_layers=int(config["num_layers"]),
                   gated=gated, activation="relu" if act == "relu" else "gelu_tanh",
                   relative_buckets=int(config.get("relative_attention_num_buckets", 32)),
                   relative_max_distance=int(config.get("relative_attention_max_distance", 128)),
                   eps=float(config.get("layer_norm_epsilon", 1e-6)))

    def to_comfy(self) -> dict:
        """The config dict ComfyUI's own T5 (comfy.text_encoders.t5.T5) is built from."""
        return {"vocab_size": self.vocab_size, "d_model": self.d_model, "d_kv": self.d_kv,
                "num_heads": self.num_heads, "d_ff": self.d_ff, "num_layers": self.num_layers,
                "is_gated_act": self.gated, "model_type": "t5",
                "dense_act_fn": "gelu_pytorch_tanh" if self.activation == "gelu_tanh" else "relu"}


FLAN_T5_XL = T5Config()

_BLOCK = re.compile(r"^encoder\.block\.(\d+)\.")


def infer_t5_config(state: Mapping[str, torch.Tensor], hf_config: Mapping | None = None) -> T5Config:
    """The encoder's config: from ``hf_config`` when given, else from tensor shapes.

    Shapes fix everything but the activation (assumed tanh GELU when gated, ReLU
    otherwise, as in every released T5) and the bucket distance (128).
    """
    if hf_config:
        return T5Config.from_hf(hf_config)
    try:
        vocab, d_model = state["shared.weight"].shape
        num_buckets, num_heads = state["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"].shape
        inner = state["encoder.block.0.layer.0.SelfAttention.q.weight"].shape[0]
    except KeyError as exc:
        raise CheckpointError(f"Not a T5 encoder: the weights have no {exc.args[0]}.") from None
    gated = "encoder.block.0.layer.1.DenseReluDense.wi_0.weight" in state
    wi = state["encoder.block.0.layer.1.DenseReluDense." + ("wi_0" if gated else "wi") + ".weight"]
    layers = 1 + max(int(m.group(1)) for k in state if (m := _BLOCK.match(k)))
    return T5Config(vocab_size=int(vocab), d_model=int(d_model), d_kv=int(inner) // int(num_heads),
                    num_heads=int(num_heads), d_ff=int(wi.shape[0]), num_layers=layers, gated=gated,
                    activation="gelu_tanh" if gated else "relu", relative_buckets=int(num_buckets))
