"""Janus-Pro's generation configuration, read from the release's ``config.json`` (either layout).

Two layouts exist:

- the original release (``deepseek-ai/Janus-Pro-1B`` / ``-7B``, ``MultiModalityConfig``): ``language_config``
  (the keyword arguments of a transformers ``LlamaConfig``), ``gen_vision_config`` (``cls`` "VQ-16",
  ``params.image_token_size`` / ``n_embed``), ``gen_aligner_config`` (``MlpProjector``: ``input_dim``,
  ``n_embed``, ``depth``, ``projector_type`` "mlp_gelu"), ``gen_head_config`` (``vision_head``: ``n_embed``,
  ``image_token_embed``, ``image_token_size``);
- the transformers release (``JanusForConditionalGeneration``, ``model_type`` "janus"): ``text_config`` (a
  ``LlamaConfig``) and ``vq_config`` (``JanusVQVAEConfig``: ``num_embeddings``, ``embed_dim``,
  ``projection_dim``, ``num_hidden_layers``, ``image_token_embed_dim``, ``hidden_act``).

Every field the released files leave out takes the default of the class that reads it in the reference
(``LlamaConfig``: hidden 4096, intermediate 11008, 32 layers, 32 heads, key-value heads = heads, RMSNorm eps
1e-6, RoPE θ 10000, 2048 positions, SiLU, no biases; the 7B ``language_config`` relies on those for its width,
intermediate size and heads). Nothing is guessed from tensor shapes: strict loading then checks every shape.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping

from ...errors import ConfigError

# transformers.LlamaConfig's defaults (the reference builds its language model as LlamaConfig(**language_config)).
LLAMA_DEFAULTS: dict[str, Any] = {
    "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
    "num_attention_heads": 32, "num_key_value_heads": None, "head_dim": None, "hidden_act": "silu",
    "max_position_embeddings": 2048, "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "rope_scaling": None,
    "attention_bias": False, "mlp_bias": False,
}
# JanusVQVAEConfig's defaults (transformers layout), for fields a saved config leaves out.
HF_VQ_DEFAULTS: dict[str, Any] = {
    "embed_dim": 8, "num_embeddings": 16384, "projection_dim": 2048, "num_hidden_layers": 2,
    "image_token_embed_dim": 2048, "hidden_act": "gelu",
}
DEFAULT_GRID = 24  # image tokens per side: the reference's 576 tokens (384 px with the 16× VQ-16)
DEFAULT_DOWNSAMPLE = 16  # VQ-16, the generation tokenizer of every release
ORIGINAL, TRANSFORMERS = "original", "transformers"
_GEN_PARTS = ("gen_vision_config", "gen_aligner_config", "gen_head_config")


@dataclass(frozen=True)
class JanusConfig:
    """What the generation path of a Janus(-Pro) model needs.

    Language model (Llama): ``hidden_size``, ``intermediate_size``, ``num_layers``, ``num_heads``,
    ``num_kv_heads`` (grouped-query attention when fewer than heads), ``head_dim``, ``rms_norm_eps``,
    ``rope_theta``, ``max_positions`` (prompt + image tokens must fit), ``text_vocab_size``, biases.
    Generation parts: ``image_vocab_size`` (VQ codebook = gen-head outputs), ``gen_embed_dim`` (the
    ``gen_embed`` table's width, the VQ code dimension), ``aligner_depth`` (Linear layers of ``gen_aligner``,
    GELU between them), ``head_hidden`` (``gen_head``'s inner width). Image: ``grid_size`` tokens per side,
    ``downsample`` pixels per token (from the VQ).
    """

    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rms_norm_eps: float
    rope_theta: float
    max_positions: int
    text_vocab_size: int
    image_vocab_size: int
    gen_embed_dim: int
    aligner_depth: int
    head_hidden: int
    attention_bias: bool = False
    mlp_bias: bool = False
    grid_size: int = DEFAULT_GRID
    downsample: int = DEFAULT_DOWNSAMPLE
    layout: str = ORIGINAL  # which release the config came from (informational)
    name: str = "Janus-Pro"

    def __post_init__(self):
        if self.num_heads % self.num_kv_heads:
            raise ConfigError(f"Janus config: {self.num_heads} attention heads are not a multiple of "
                              f"{self.num_kv_heads} key-value heads.")
        if self.head_dim % 2:
            raise ConfigError(f"Janus config: head_dim {self.head_dim} must be even for RoPE.")
        if self.grid_size < 1:
            raise ConfigError(f"Janus config: the image grid must have at least one token per side, got "
                              f"{self.grid_size}.")
        if self.aligner_depth < 1:
            raise ConfigError(f"Janus config: gen_aligner depth must be ≥ 1, got {self.aligner_depth}.")

    @property
    def num_image_tokens(self) -> int:
        return self.grid_size * self.grid_size

    @property
    def image_size(self) -> int:
        return self.grid_size * self.downsample

    @property
    def max_prompt_tokens(self) -> int:
        """The longest prompt (in text tokens, BOS and image-start tag included) that fits with the image."""
        return self.max_positions - self.num_image_tokens


def parse_config_json(text: str | bytes | Mapping, source: str = "config.json") -> dict:
    """The parsed ``config.json`` (text or an already-parsed mapping); ConfigError when it is not JSON."""
    if isinstance(text, Mapping):
        return dict(text)
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Cannot read {source} as JSON ({exc}); download it again.") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source} is not a JSON object; is it a Janus-Pro config.json?")
    return data


def is_janus_config(data: Mapping) -> bool:
    """True for a config.json of either Janus layout (generation-capable or not)."""
    return data.get("model_type") in ("multi_modality", "janus") or "language_config" in data or \
        "gen_head_config" in data or ("text_config" in data and "vq_config" in data)


def janus_config(data: Mapping, *, grid_size: int = DEFAULT_GRID, downsample: int = DEFAULT_DOWNSAMPLE,
                 source: str = "config.json") -> JanusConfig:
    """A JanusConfig from a parsed config.json of either release.

    Raises ConfigError for an understanding-only model (no generation parts), a config of another kind,
    an activation or RoPE variant this implementation does not have, or parts whose widths cannot connect.
    Follows ``MultiModalityConfig`` / ``LlamaConfig`` (deepseek-ai/Janus ``janus/models/modeling_vlm.py``)
    and transformers' ``JanusConfig``.
    """
    if "language_config" in data or data.get("model_type") == "multi_modality":
        return _from_original(data, grid_size, downsample, source)
    if "text_config" in data or data.get("model_type") == "janus":
        return _from_transformers(data, grid_size, downsample, source)
    raise ConfigError(f"{source} is not a Janus-Pro config (neither 'language_config' nor 'text_config'): give the "
                      f"folder of deepseek-ai/Janus-Pro-1B or -7B (or deepseek-community/Janus-Pro-*).")


def _from_original(data: Mapping, grid_size: int, downsample: int, source: str) -> JanusConfig:
    missing = [k for k in _GEN_PARTS if not isinstance(data.get(k), Mapping)]
    if missing:
        raise ConfigError(f"{source} describes an understanding-only model (no {', '.join(missing)}): it cannot "
                          f"generate images. Use Janus-Pro-1B or -7B (deepseek-ai), which have the generation head.")
    llama = _llama(data.get("language_config") or {}, source)
    vision = _params(data, "gen_vision_config")
    aligner = _params(data, "gen_aligner_config")
    head = _params(data, "gen_head_config")
    kind = aligner.get("projector_type", "linear")
    if kind != "mlp_gelu":
        raise ConfigError(f"{source}: gen_aligner projector_type '{kind}' is not supported (Janus-Pro uses "
                          f"'mlp_gelu').")
    if data["gen_head_config"].get("cls", "vision_head") != "vision_head":
        raise ConfigError(f"{source}: gen_head cls '{data['gen_head_config'].get('cls')}' is not supported "
                          f"(Janus-Pro uses 'vision_head').")
    image_vocab = _int(head, "image_token_size", source)
    embed_dim = _int(vision, "n_embed", source)
    _require_equal(source, ("gen_vision_config image_token_size", _int(vision, "image_token_size", source)),
                   ("gen_head_config image_token_size", image_vocab))
    _require_equal(source, ("gen_aligner_config input_dim", _int(aligner, "input_dim", source)),
                   ("gen_vision_config n_embed", embed_dim))
    _require_equal(source, ("gen_aligner_config n_embed", _int(aligner, "n_embed", source)),
                   ("language hidden_size", llama["hidden_size"]))
    _require_equal(source, ("gen_head_config n_embed", _int(head, "n_embed", source)),
                   ("language hidden_size", llama["hidden_size"]))
    return JanusConfig(**llama, image_vocab_size=image_vocab, gen_embed_dim=embed_dim,
                       aligner_depth=int(aligner.get("depth", 1)), head_hidden=_int(head, "image_token_embed", source),
                       grid_size=grid_size, downsample=downsample, layout=ORIGINAL)


def _from_transformers(data: Mapping, grid_size: int, downsample: int, source: str) -> JanusConfig:
    llama = _llama(data.get("text_config") or {}, source)
    vq = {**HF_VQ_DEFAULTS, **(data.get("vq_config") or {})}
    if vq["hidden_act"] != "gelu":
        raise ConfigError(f"{source}: vq_config hidden_act '{vq['hidden_act']}' is not supported (Janus-Pro uses "
                          f"'gelu').")
    _require_equal(source, ("vq_config projection_dim", int(vq["projection_dim"])),
                   ("text_config hidden_size", llama["hidden_size"]))
    _require_equal(source, ("vq_config image_token_embed_dim", int(vq["image_token_embed_dim"])),
                   ("text_config hidden_size", llama["hidden_size"]))
    # transformers' head: proj_out (image_token_embed_dim → projection_dim), GELU, vision_head (→ num_embeddings)
    return JanusConfig(**llama, image_vocab_size=int(vq["num_embeddings"]), gen_embed_dim=int(vq["embed_dim"]),
                       aligner_depth=int(vq["num_hidden_layers"]), head_hidden=int(vq["projection_dim"]),
                       grid_size=grid_size, downsample=downsample, layout=TRANSFORMERS)


def _llama(cfg: Mapping, source: str) -> dict:
    """The language-model fields of a LlamaConfig dict, with LlamaConfig's defaults for what it leaves out."""
    c = {**LLAMA_DEFAULTS, **{k: v for k, v in cfg.items() if v is not None or k not in LLAMA_DEFAULTS}}
    if c.get("model_type", "llama") != "llama":
        raise ConfigError(f"{source}: the language model is '{c['model_type']}', not a Llama.")
    if c["hidden_act"] != "silu":
        raise ConfigError(f"{source}: hidden_act '{c['hidden_act']}' is not supported (Llama uses 'silu').")
    theta = c["rope_theta"]
    rope = c.get("rope_parameters") or c.get("rope_scaling")  # transformers 5 / 4 names
    if isinstance(rope, Mapping):
        kind = rope.get("rope_type", rope.get("type", "default"))
        if kind != "default":
            raise ConfigError(f"{source}: RoPE scaling '{kind}' is not supported (Janus-Pro uses plain RoPE).")
        theta = rope.get("rope_theta", theta)
    heads = int(c["num_attention_heads"])
    hidden = int(c["hidden_size"])
    return dict(hidden_size=hidden, intermediate_size=int(c["intermediate_size"]),
                num_layers=int(c["num_hidden_layers"]), num_heads=heads,
                num_kv_heads=int(c["num_key_value_heads"] or heads), head_dim=int(c["head_dim"] or hidden // heads),
                rms_norm_eps=float(c["rms_norm_eps"]), rope_theta=float(theta),
                max_positions=int(c["max_position_embeddings"]), text_vocab_size=int(c["vocab_size"]),
                attention_bias=bool(c["attention_bias"]), mlp_bias=bool(c["mlp_bias"]))


def _params(data: Mapping, part: str) -> Mapping:
    return data[part].get("params") or {}


def _int(params: Mapping, key: str, source: str) -> int:
    if key not in params:
        raise ConfigError(f"{source} has no '{key}' in its generation parts; download config.json again.")
    return int(params[key])


def _require_equal(source: str, a: tuple[str, int], b: tuple[str, int]) -> None:
    if a[1] != b[1]:
        raise ConfigError(f"{source}: {a[0]} ({a[1]}) must equal {b[0]} ({b[1]}); the parts cannot connect.")
