"""comfyui-arsample: entropy-informed sampling for autoregressive image models.

Importing the package does no heavy work: ComfyUI imports this file to find
``comfy_entrypoint``, and the library (``samplers``, ``models``) is usable on its
own without ComfyUI installed.
"""

__version__ = "0.1.0"


async def comfy_entrypoint():
    """ComfyUI V3 entry point: the node list lives in ``nodes`` (imported only here)."""
    from .nodes import ARSampleExtension

    return ARSampleExtension()
