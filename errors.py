"""Errors the pack raises for bad input.

Every message says what was wrong and what to do about it. Hosts (the CLI, the
ComfyUI nodes) show the message as is, without a stack trace.
"""


class ARSampleError(ValueError):
    """Base class: a request the pack refuses, with a message meant for the user."""


class CheckpointError(ARSampleError):
    """A checkpoint file is missing, unreadable, unsafe or of the wrong kind."""


class ConfigError(ARSampleError):
    """A model configuration, or a pairing of models, that cannot work."""


class SamplingError(ARSampleError):
    """Sampling settings or a condition that are out of range."""
