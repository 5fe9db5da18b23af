"""Class condition node."""

from __future__ import annotations

import torch

from ..errors import SamplingError
from ._comfy import AR_COND, AR_MODEL, CATEGORY, io
from .payloads import ARConditioning, ARModelHandle


def parse_classes(text: str, handle: ARModelHandle) -> tuple[list[int], list[str]]:
    """'207, 360' or 'golden retriever, 360' → ids and display names; raises SamplingError."""
    names = handle.class_names or []
    lookup = {n.lower(): i for i, n in enumerate(names)}
    ids, shown = [], []
    for part in [p.strip() for p in text.replace("\n", ",").split(",") if p.strip()]:
        if part.lstrip("-").isdigit():
            idx = int(part)
        elif part.lower() in lookup:
            idx = lookup[part.lower()]
        else:
            hint = f" Known names include: {', '.join(names[:10])}..." if names else " Use class ids."
            raise SamplingError(f"Unknown class '{part}' for {handle.name}.{hint}")
        if not 0 <= idx < handle.num_classes:
            raise SamplingError(f"Class id {idx} is out of range: {handle.name} knows 0..{handle.num_classes - 1}.")
        ids.append(idx)
        shown.append(names[idx] if idx < len(names) else str(idx))
    if not ids:
        raise SamplingError("No class given: type one or more class ids or names, separated by commas.")
    return ids, shown


class ClassCondition(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ARsampleClassCondition",
            display_name="Class Condition",
            category=CATEGORY,
            description="Which classes to generate with a class-to-image model: ids or names, comma-separated "
                        "(ImageNet names for the official c2i models; shape names for the embedded model).",
            inputs=[
                AR_MODEL.Input("model", tooltip="The class-to-image model (to check ids and resolve names)."),
                io.String.Input("classes", default="207, 360", multiline=False,
                                tooltip="e.g. '207, 360' or 'golden retriever, otter'; one image per entry."),
                io.Int.Input("batch_size", default=1, min=1, max=64,
                             tooltip="Images per listed class (the batch is classes x batch_size)."),
            ],
            outputs=[AR_COND.Output(display_name="conditioning")],
        )

    @classmethod
    def execute(cls, model: ARModelHandle, classes: str, batch_size: int) -> io.NodeOutput:
        if model.model_type != "c2i":
            raise SamplingError(f"{model.name} is a text-to-image model; use 'Text Condition (T5)', not classes.")
        ids, names = parse_classes(classes, model)
        labels = torch.tensor(ids, dtype=torch.long).repeat_interleave(batch_size)
        names = [n for n in names for _ in range(batch_size)]
        return io.NodeOutput(ARConditioning(labels, names))
