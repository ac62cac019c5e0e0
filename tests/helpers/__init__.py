"""Helpers shared by test modules (test modules import from here, never from each other)."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
