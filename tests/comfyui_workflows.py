"""UI-format (LiteGraph) workflow -> API-format prompt, with comfyui-autograph (helper module, no tests here)."""

from __future__ import annotations

#: UI-only node types the frontend never sends to the server (not errors when converting)
FRONTEND_ONLY_NODES = frozenset({"Note", "MarkdownNote", "Reroute", "PrimitiveNode"})


def ui_to_api(workflow: dict, object_info: dict, *, strict: bool = True) -> dict:
    """Convert a UI-format (LiteGraph) workflow to an API-format prompt with comfyui-autograph.

    Uses ``autograph.convert.workflow_to_api_format_with_errors(wf, node_info=object_info,
    use_api=True)`` (the error-reporting twin of ``workflow_to_api_format``; note that
    ``import autograph.convert`` gives a *function*, the package re-exports ``convert``).
    With ``strict`` any conversion warning is an error, except skipped frontend-only nodes
    (Note, MarkdownNote, Reroute, PrimitiveNode): autograph silently drops node types missing from
    ``object_info``, which would hide a renamed or unregistered node.
    """
    from autograph.convert import workflow_to_api_format_with_errors

    res = workflow_to_api_format_with_errors(workflow, node_info=object_info, use_api=True)
    problems = [e.message for e in res.errors]
    if strict:
        for w in res.warnings:
            if (w.details or {}).get("class_type") in FRONTEND_ONLY_NODES:
                continue
            problems.append(f"node {w.node_id}: {w.message}")
    if problems or not res.success:
        raise ValueError("UI -> API conversion failed: " + "; ".join(problems or ["no nodes converted"]))
    return res.data
