"""oodbench: ID accuracy gained vs OOD robustness kept when fine-tuning pretrained vision models."""
from benchmark.errors import BenchmarkError

__all__ = ["BenchmarkError"]
__version__ = "0.1.0"
