"""Example photos shipped with the package (scikit-image sample photos: CC0 / public domain)."""

from pathlib import Path

EXAMPLES_DIR = Path(__file__).resolve().parent
EXAMPLES = ("chelsea.jpg", "coffee.jpg", "astronaut.jpg", "rocket.jpg")
