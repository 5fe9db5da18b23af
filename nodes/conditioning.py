"""Class condition node."""

from __future__ import annotations

from ..models.registry import CLASS, parse_classes, require_kind
from ._comfy import AR_COND, AR_MODEL, CATEGORY, io
from .payloads import ARModelHandle


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
        require_kind(model.info, CLASS, "node")
        ids, names = parse_classes(classes, model.info)
        ids = [i for i in ids for _ in range(batch_size)]
        names = [n for n in names for _ in range(batch_size)]
        return io.NodeOutput(model.family.class_condition(model.info, ids, names))
