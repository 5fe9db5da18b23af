"""Model families (pure torch, no ComfyUI imports)."""
