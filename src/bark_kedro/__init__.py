"""Bark-style text-to-audio training with Kedro, JAX/Flax and MLflow."""

__version__ = "0.1.0"
