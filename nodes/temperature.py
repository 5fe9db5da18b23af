"""Entropy Temperature: the paper's per-token temperature as a value, from a preset or custom parameters.

The entropy widgets are defined here once; the runner takes the value on its optional input (unconnected
= plain sampling), and today's entropy sampler nodes reuse the same widgets.
"""

from __future__ import annotations

from ..samplers import PRESETS, EntropyTemperature, preset_or_custom
from ._comfy import AR_TEMPERATURE, CATEGORY, io

PRESET_CHOICES = list(PRESETS) + ["custom"]


def entropy_inputs(with_off: bool = False) -> list:
    """The entropy-temperature widgets (the old SJD node adds 'off' = plain sampling)."""
    options = (["off"] if with_off else []) + PRESET_CHOICES
    return [
        io.Combo.Input("preset", options=options, default="llamagen",
                       tooltip="Entropy-temperature parameters per model family (paper Table 5); 'custom' uses "
                               "the values below" + ("; 'off' samples without it." if with_off else ".")),
        io.Float.Input("t0", default=2.5, min=0.0, max=10.0, step=0.05, tooltip="T0 (used with preset 'custom')."),
        io.Float.Input("alpha", default=3.0, min=0.05, max=20.0, step=0.05,
                       tooltip="α, the entropy scale (used with preset 'custom')."),
        io.Float.Input("theta", default=0.6, min=0.0, max=5.0, step=0.05,
                       tooltip="θ, the temperature floor (used with preset 'custom')."),
        io.Float.Input("clamp_min", default=0.0, min=0.0, max=10.0, step=0.05,
                       tooltip="Lowest temperature allowed; 0 = no clamp (preset 'custom')."),
        io.Float.Input("clamp_max", default=0.0, min=0.0, max=10.0, step=0.05,
                       tooltip="Highest temperature allowed; 0 = no clamp (preset 'custom')."),
        io.Combo.Input("entropy_source", options=["filtered", "raw"], default="filtered",
                       tooltip="Measure the entropy after top-k/top-p (released LlamaGen code) or before (used "
                               "with preset 'custom'; every preset has its own source)."),
    ]


def entropy_temperature(preset, t0, alpha, theta, clamp_min, clamp_max, entropy_source) -> EntropyTemperature | None:
    """The entropy widgets → parameters; a named preset keeps its own values, source included; 'off' → None."""
    return preset_or_custom(preset, t0=t0, alpha=alpha, theta=theta, clamp_min=clamp_min, clamp_max=clamp_max,
                            source=entropy_source)


class EntropyTemperatureNode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ARsampleEntropyTemperature",
            display_name="Entropy Temperature",
            category=CATEGORY,
            description="Entropy-informed temperature (Ma et al., NeurIPS 2025): each token's temperature is "
                        "T0·exp(−H/α)+θ from the entropy H of its distribution, so flat regions get more variety "
                        "and detailed regions cleaner structure. No extra model passes. Connect it to 'AR Sample' "
                        "(left unconnected, sampling is plain).",
            inputs=entropy_inputs(),
            outputs=[AR_TEMPERATURE.Output(display_name="entropy_temperature",
                                           tooltip="The temperature map, for the 'entropy_temperature' input.")],
        )

    @classmethod
    def execute(cls, preset, t0, alpha, theta, clamp_min, clamp_max, entropy_source) -> io.NodeOutput:
        return io.NodeOutput(entropy_temperature(preset, t0, alpha, theta, clamp_min, clamp_max, entropy_source))
