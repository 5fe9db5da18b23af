"""The CPU lab of the embedded model: procedural shapes data, the trainer, the evaluator, the sampler
benchmark and the entropy calibration of the ``embedded`` preset.

The shipped weights and their paths live in ``models.embedded``; everything here makes or measures them.
Nothing in ``samplers/`` or ``models/`` imports this package.
"""
