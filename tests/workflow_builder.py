"""Build UI-format (LiteGraph, version 0.4) workflows from a compact graph description.

Widget values are laid out in the order the ComfyUI frontend uses, read from a
live server's /object_info, so the files load in the UI and convert to API
format like ones saved by hand. Used by make_workflows.py; not part of the pack.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
NOTE_TYPES = {"MarkdownNote", "Note"}  # frontend-only nodes: one text widget, never executed


@dataclass
class Node:
    id: int
    type: str
    pos: tuple[float, float]
    widgets: dict = field(default_factory=dict)  # input name → value (others take the schema default)
    links: dict = field(default_factory=dict)  # input name → (source node id, output slot)
    title: str | None = None
    size: tuple[float, float] = (320, 200)
    properties: dict = field(default_factory=dict)


def _is_widget(spec) -> bool:
    kind = spec[0]
    return isinstance(kind, list) or kind in WIDGET_TYPES


def _default(spec):
    kind, opts = spec[0], (spec[1] if len(spec) > 1 else {})
    if "default" in opts:
        return opts["default"]
    if isinstance(kind, list):
        return kind[0]
    if kind == "COMBO":
        return opts.get("options", [None])[0]
    return {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}.get(kind)


def build(nodes: list[Node], object_info: dict, groups: list[dict] | None = None) -> dict:
    """The UI-format workflow for ``nodes`` (links are resolved by name against object_info)."""
    links, out_links = [], {}
    ui_nodes = []
    for order, node in enumerate(nodes):
        if node.type in NOTE_TYPES:
            ui_nodes.append({"id": node.id, "type": node.type, "pos": list(node.pos), "size": list(node.size),
                             "flags": {}, "order": order, "mode": 0, "inputs": [], "outputs": [],
                             "properties": {}, "widgets_values": [node.widgets["text"]],
                             **({"title": node.title} if node.title else {})})
            continue
        info = object_info[node.type]
        req = info["input"].get("required", {})
        opt = info["input"].get("optional", {})
        order_req = info.get("input_order", {}).get("required", list(req))
        order_opt = info.get("input_order", {}).get("optional", list(opt))
        inputs, widgets = [], []
        for name in list(order_req) + list(order_opt):
            spec = req.get(name) or opt.get(name)
            if name in node.links or not _is_widget(spec):
                if name not in node.links and name in opt:
                    continue  # optional socket left unconnected
                link_id = None
                if name in node.links:
                    src, slot = node.links[name]
                    link_id = len(links) + 1
                    links.append([link_id, src, slot, node.id, len(inputs), spec[0]])
                    out_links.setdefault((src, slot), []).append(link_id)
                inputs.append({"name": name, "type": spec[0], "link": link_id})
                continue
            unknown = set(node.widgets) - set(req) - set(opt)
            if unknown:
                raise KeyError(f"{node.type} has no inputs {unknown}")
            widgets.append(node.widgets[name] if name in node.widgets else _default(spec))
            opts = spec[1] if len(spec) > 1 else {}
            if spec[0] == "INT" and (opts.get("control_after_generate") or name in ("seed", "noise_seed")):
                widgets.append("fixed")
        ui_nodes.append({
            "id": node.id, "type": node.type, "pos": list(node.pos), "size": list(node.size), "flags": {},
            "order": order, "mode": 0, "inputs": inputs, "outputs": [],
            "properties": {"Node name for S&R": node.type, **node.properties}, "widgets_values": widgets,
            **({"title": node.title} if node.title else {}),
        })
    for ui_node, node in zip(ui_nodes, nodes):
        if node.type in NOTE_TYPES:
            continue
        info = object_info[node.type]
        for slot, (kind, name) in enumerate(zip(info["output"], info.get("output_name", info["output"]))):
            ui_node["outputs"].append({"name": name, "type": kind, "links": out_links.get((node.id, slot), []),
                                       "slot_index": slot})
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, "arsample/" + "/".join(n.type for n in nodes))),
        "revision": 0, "last_node_id": max(n.id for n in nodes), "last_link_id": len(links),
        "nodes": ui_nodes, "links": links, "groups": groups or [], "config": {},
        "extra": {"ds": {"scale": 0.8, "offset": [0, 0]}}, "version": 0.4,
    }
